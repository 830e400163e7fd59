// @rollout/framework 2.2's types (dist/index.d.ts: zAutomation, zAutomationRun, …) and the
// answers connect-react reads from its tRPC procedures, transcribed into zod. Dates the
// framework types as z.date() travel as ISO strings in JSON (no tRPC transformer is used).
const { z } = require("zod");

const isoDate = z.string().datetime({ offset: true });
const inputParams = z.record(z.string(), z.any());

const zAutomationTrigger = z.object({
  appKey: z.string(),
  triggerKey: z.string(),
  credentialKey: z.string(),
  inputParams,
  subscription: z
    .object({
      createdAt: z.string(),
      refreshedAt: z.string().optional(),
      data: z.record(z.string(), z.any()).optional(),
    })
    .optional(),
});

const zAutomationAction = z.object({
  appKey: z.string(),
  actionKey: z.string(),
  credentialKey: z.string(),
  inputParams,
});

const zAutomation = z.object({
  id: z.string().uuid(),
  createdAt: isoDate,
  updatedAt: isoDate,
  status: z.enum(["INVALID", "READY"]),
  active: z.boolean(),
  live: z.boolean(),
  name: z.string(),
  consumerKey: z.string(),
  blueprintKey: z.string().nullable(),
  trigger: zAutomationTrigger,
  action: zAutomationAction,
  customData: z.record(z.string(), z.any()).nullable(),
});

const zAutomationRunExecutionOutput = z.discriminatedUnion("status", [
  z.object({ status: z.literal("USER_ERROR"), error: z.any() }),
  z.object({ status: z.literal("SERVER_ERROR"), error: z.any() }),
  z.object({ status: z.literal("SUCCESS"), data: z.any() }),
]);

const zAutomationRunExecution = z.object({
  startedAt: z.union([z.date(), isoDate]),
  endedAt: z.union([z.date(), isoDate]),
  output: zAutomationRunExecutionOutput,
});

const zAutomationRun = z.object({
  id: z.string().uuid(),
  automationId: z.string().uuid(),
  status: z.union([
    z.literal("SERVER_ERROR"),
    z.literal("USER_ERROR"),
    z.literal("PENDING"),
    z.literal("SUCCESS"),
    z.literal("EXECUTING"),
    z.literal("RETRY"),
  ]),
  executions: z.array(zAutomationRunExecution),
  triggerEvent: z.object({ payload: z.any() }),
});

// what connect-react reads of triggers.list / actions.list (Object.entries(data) → .name,
// .triggers / .actions, payloadConfiguration.type === "static" → staticSchema [{key, label}])
const zStaticSchema = z.array(z.object({ key: z.string(), label: z.string() }));
const zTriggersList = z.record(
  z.string(),
  z.object({
    name: z.string(),
    triggers: z.record(
      z.string(),
      z.object({
        name: z.string(),
        payloadConfiguration: z.object({ type: z.literal("static"), staticSchema: zStaticSchema }),
      }),
    ),
  }),
);
const zActionsList = z.record(
  z.string(),
  z.object({ name: z.string(), actions: z.record(z.string(), z.object({ name: z.string() })) }),
);

// framework's AuthUserInputDefinition (textfield | subdomain | dropdown)
const zAuthUserInput = z.discriminatedUnion("type", [
  z.object({
    type: z.literal("textfield"),
    key: z.string(),
    label: z.string(),
    placeholder: z.string().optional(),
    infoHTML: z.string().optional(),
  }),
  z.object({
    type: z.literal("subdomain"),
    key: z.string(),
    label: z.string(),
    placeholder: z.string().optional(),
    domain: z.string().optional(),
    infoHTML: z.string().optional(),
  }),
  z.object({
    type: z.literal("dropdown"),
    key: z.string(),
    label: z.string(),
    options: z.array(z.object({ id: z.string(), name: z.string() })),
    placeholder: z.string().optional(),
    infoHTML: z.string().optional(),
  }),
]);
const zAuthInfo = z.object({
  type: z.enum(["none", "JWT", "apiKey", "oauth1", "oauth2"]),
  singleCredentialOnly: z.boolean().optional(),
  customParams: z.array(zAuthUserInput).optional(),
});
const zAppCredentials = z.array(
  z.object({
    credentialKey: z.string(),
    credentialType: z.literal("PRIMARY"),
    label: z.string().optional(),
    avatar: z.string().optional(),
  }),
);

module.exports = {
  zAutomation,
  zAutomationRun,
  zTriggersList,
  zActionsList,
  zStaticSchema,
  zAuthInfo,
  zAppCredentials,
  zNothing: z.null(),
  zAddedCredential: z.object({ credentialKey: z.string() }),
  zAuthorizeURL: z.object({ url: z.string().url(), requestId: z.string() }),
};
