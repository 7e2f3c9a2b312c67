// Drives the official `gumloop` npm SDK (GumloopClient) against an Openloop server.
// Usage: node run_flow.js '<json>' where json is
//   {"base_url": ".../api/v1", "api_key", "user_id", "project_id"?, "action": "run"|"status"|"run_expect_error",
//    "flow_id"?, "inputs"?, "run_id"?}
// Prints one JSON line: {"outputs"} | {"status"} | {"error"}.
const { GumloopClient } = require("gumloop");

async function main() {
  const args = JSON.parse(process.argv[2]);
  const client = new GumloopClient({ apiKey: args.api_key, userId: args.user_id, projectId: args.project_id });
  // The SDK hard-codes https://api.gumloop.com/api/v1 on its axios instance; point it here.
  client.api.defaults.baseURL = args.base_url;
  // runFlow logs "Started automation run: <url>" to stdout; keep stdout for the result.
  console.log = (...m) => process.stderr.write(m.join(" ") + "\n");
  try {
    if (args.action === "status") {
      process.stdout.write(JSON.stringify({ status: await client.getRunStatus(args.run_id) }) + "\n");
    } else {
      const outputs = await client.runFlow(args.flow_id, args.inputs || {}, 100, 60000);
      process.stdout.write(JSON.stringify({ outputs }) + "\n");
    }
  } catch (e) {
    const status = e.response ? e.response.status : null;
    const body = e.response ? e.response.data : null;
    process.stdout.write(JSON.stringify({ error: String(e.message || e), status, body }) + "\n");
  }
}

main();
