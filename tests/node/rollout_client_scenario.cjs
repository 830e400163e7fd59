// Rollout's own API client against rollout-yaml: the tRPC client that
// @rollout/api-client-react builds (RolloutAPIClientProvider → trpc.createClient with
// httpBatchLink, `${apiBaseUrl}/trpc`, maxURLLength 2083, Bearer token), obtained from the
// provider as connect-react's useOAuth does (`trpc.useContext().client`), then the calls the
// embedded components make. Every answer is checked against @rollout/framework's types
// (rollout_types.cjs). Reads {apiBaseUrl, tokens, mutations} on stdin; writes a report.
const fs = require("node:fs");
const React = require("react");
const { renderToString } = require("react-dom/server");
const { RolloutAPIClientProvider, trpc } = require("@rollout/api-client-react");
const types = require("./rollout_types.cjs");

const config = JSON.parse(fs.readFileSync(0, "utf8"));
const report = { answers: {}, problems: [], errors: {} };

function clientFor(token) {
  let client;
  function Grab() {
    client = trpc.useContext().client;
    return null;
  }
  renderToString(
    React.createElement(
      RolloutAPIClientProvider,
      { apiBaseUrl: config.apiBaseUrl, getToken: async () => token, resetToken() {} },
      React.createElement(Grab),
    ),
  );
  return client;
}

function check(name, schema, value) {
  const parsed = schema.safeParse(value);
  if (!parsed.success) report.problems.push({ name, issues: parsed.error.issues, value });
  report.answers[name] = value;
  return value;
}

async function refused(name, promise) {
  try {
    report.answers[name] = await promise;
    report.problems.push({ name, issues: "expected an error" });
  } catch (error) {
    report.errors[name] = { message: error.message, data: error.data ?? null };
  }
}

async function rest(token, path, init = {}) {
  const response = await fetch(config.apiBaseUrl + path, {
    ...init,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
  });
  return { status: response.status, body: await response.json() };
}

async function push(token, triggerKey, payload) {
  const answer = await rest(token, "/trigger-push-event", {
    method: "POST",
    body: JSON.stringify({ appKey: "partner", triggerKey, payload }),
  });
  if (answer.status !== 202) throw new Error(`push: ${JSON.stringify(answer)}`);
  return answer.body;
}

const FINISHED = ["SUCCESS", "USER_ERROR", "SERVER_ERROR"];

async function finishedRuns(token, automationId, count) {
  const deadline = Date.now() + 20000;
  for (;;) {
    const { body } = await rest(token, `/automation-runs?automationId=${automationId}`);
    const done = body.filter((run) => FINISHED.includes(run.status));
    if (done.length >= count) return done;
    if (Date.now() > deadline) throw new Error(`runs did not finish: ${JSON.stringify(body)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function main() {
  const acme = clientFor(config.tokens.acme);
  const globex = clientFor(config.tokens.globex);

  // one batch: the provider's first two queries (RolloutConnectProvider's Me component)
  const [triggers, actions] = await Promise.all([
    acme.triggers.list.query(),
    acme.actions.list.query(),
  ]);
  check("triggers.list", types.zTriggersList, triggers);
  check("actions.list", types.zActionsList, actions);
  check("apps.authInfo sink", types.zAuthInfo, await acme.apps.authInfo.query({ appKey: "sink" }));
  check("apps.authInfo crm", types.zAuthInfo, await acme.apps.authInfo.query({ appKey: "crm" }));
  check(
    "apps.credentials sink",
    types.zAppCredentials,
    await acme.apps.credentials.query({ appKey: "sink" }),
  );
  check(
    "triggers.getPayloadSchema",
    types.zStaticSchema,
    await acme.triggers.getPayloadSchema.query({
      appKey: "partner",
      triggerKey: "order-created",
      credentialKey: "acme",
      inputParams: {},
    }),
  );
  const listed = check(
    "automations.list",
    types.zAutomation.array(),
    await acme.automations.list.query(),
  );
  const sink = listed.find((a) => a.name === "Orders to the sink");
  const crm = listed.find((a) => a.name === "Contacts to the CRM");
  const one = await acme.automations.get.query({ automationId: sink.id });
  check("automations.get", types.zAutomation, one);

  await push(config.tokens.acme, "order-created", { order_id: 5, total: 20 });
  const [success] = await finishedRuns(config.tokens.acme, sink.id, 1);
  check("run success", types.zAutomationRun, success);
  await push(config.tokens.acme, "order-created", { order_id: 422, total: 20 });
  const runs = await finishedRuns(config.tokens.acme, sink.id, 2);
  check("run user error", types.zAutomationRun, runs.find((r) => r.status === "USER_ERROR"));

  await push(config.tokens.acme, "contact-created", { contact_id: 77 });
  check("run jwt", types.zAutomationRun, (await finishedRuns(config.tokens.acme, crm.id, 1))[0]);

  await refused("globex automations.get", globex.automations.get.query({ automationId: sink.id }));
  report.answers["globex run by id"] = await rest(
    config.tokens.globex,
    `/automation-runs?automationRunId=${success.id}`,
  );
  report.answers["acme run by id"] = await rest(
    config.tokens.acme,
    `/automation-runs?automationRunId=${success.id}`,
  );
  check(
    "analytics.logEvent",
    types.zNothing,
    await acme.analytics.logEvent.mutate({ eventType: "automation-creator viewed" }),
  );
  if (config.mutations) await mutations(acme, globex);
}

async function mutations(acme, globex) {
  const token = config.tokens.acme;
  check(
    "blueprint before",
    types.zAutomation.nullable(),
    await acme.blueprints.getAutomation.query({ blueprintKey: "orders-to-sink" }),
  );
  // as BlueprintEnabler saves: the form's data with the blueprintKey
  const enabled = check(
    "create from blueprint",
    types.zAutomation,
    await acme.automations.create.mutate({
      name: "Orders via the blueprint",
      blueprintKey: "orders-to-sink",
      trigger: { appKey: "partner", triggerKey: "order-created", credentialKey: "acme", inputParams: {} },
      action: { appKey: "sink", actionKey: "deliver", credentialKey: "sink", inputParams: { note: "bp" } },
    }),
  );
  check(
    "blueprint after",
    types.zAutomation,
    await acme.blueprints.getAutomation.query({ blueprintKey: "orders-to-sink" }),
  );
  const written = check(
    "create written out",
    types.zAutomation,
    await acme.automations.create.mutate({
      name: "Big orders",
      trigger: { appKey: "partner", triggerKey: "order-created", credentialKey: "acme", inputParams: {} },
      action: {
        appKey: "sink",
        actionKey: "deliver",
        credentialKey: "sink",
        inputParams: { order_id: "{{ payload.order_id }}", text: "big one" },
      },
    }),
  );
  check(
    "toggle off",
    types.zAutomation,
    await acme.automations.toggleActive.mutate({ id: enabled.id, active: false }),
  );
  await push(token, "order-created", { order_id: 6, total: 30 });
  const [run] = await finishedRuns(token, written.id, 1);
  check("written-out run", types.zAutomationRun, run);
  const { body: blueprintRuns } = await rest(token, `/automation-runs?automationId=${enabled.id}`);
  report.answers["switched-off runs"] = blueprintRuns;
  check(
    "toggle on",
    types.zAutomation,
    await acme.automations.toggleActive.mutate({ id: enabled.id, active: true }),
  );
  await refused("globex delete", globex.automations.delete.mutate({ id: written.id }));
  check("delete", types.zAutomation, await acme.automations.delete.mutate({ id: written.id }));
  await refused("get deleted", acme.automations.get.query({ automationId: written.id }));
  // CredentialInput's "Add new account" for an API-token App: test, then save
  report.answers["test bad token"] = await acme.credentials.testConnection.mutate({
    appKey: "sink",
    apiToken: { token: "wrong-token" },
  });
  report.answers["test good token"] = await acme.credentials.testConnection.mutate({
    appKey: "sink",
    apiToken: { token: config.sinkToken },
  });
  const added = check(
    "addApiToken",
    types.zAddedCredential,
    await acme.credentials.addApiToken.mutate({
      appKey: "sink",
      credential: { token: config.sinkToken },
    }),
  );
  check(
    "credentials after",
    types.zAppCredentials,
    await acme.apps.credentials.query({ appKey: "sink" }),
  );
  const usesIt = check(
    "create with the new credential",
    types.zAutomation,
    await acme.automations.create.mutate({
      name: "Orders with the new account",
      trigger: { appKey: "partner", triggerKey: "contact-created", credentialKey: "acme", inputParams: {} },
      action: {
        appKey: "sink",
        actionKey: "deliver",
        credentialKey: added.credentialKey,
        inputParams: { order_id: "{{ payload.contact_id }}", text: "with the new account" },
      },
    }),
  );
  await refused(
    "delete used credential",
    acme.credentials.delete.mutate({ credentialKey: added.credentialKey, appKey: "sink" }),
  );
  await acme.automations.delete.mutate({ id: usesIt.id });
  report.answers["delete credential"] = await acme.credentials.delete.mutate({
    credentialKey: added.credentialKey,
    appKey: "sink",
  });
  report.answers["list after"] = check(
    "list after",
    types.zAutomation.array(),
    await acme.automations.list.query(),
  );
}

main()
  .catch((error) => {
    report.failure = String(error && error.stack ? error.stack : error);
  })
  .finally(() => process.stdout.write(JSON.stringify(report)));
