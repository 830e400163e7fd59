// A partner's page embedding Rollout's own components, unchanged: RolloutConnectProvider with
// the runner's `${address}/api` and a consumer token, and AutomationsManager. Bundled by
// esbuild for the browser test (test_rollout_connect_react.py).
import React from "react";
import { createRoot } from "react-dom/client";
import { AutomationsManager, RolloutConnectProvider } from "@rollout/connect-react";

createRoot(document.getElementById("root")).render(
  React.createElement(
    RolloutConnectProvider,
    { apiBaseUrl: window.API_BASE_URL, token: () => window.CONSUMER_TOKEN },
    React.createElement(AutomationsManager, {}),
  ),
);
