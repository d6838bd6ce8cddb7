// A gRPC client that is not ours: @grpc/grpc-js with @grpc/proto-loader, built from the
// project's .proto files at run time (no generated code), so the verifier's wire contract
// is checked by an independent implementation.
//
//   node client.mjs TARGET PROTO_ROOT TLS_DIR CALL...
//
// TLS_DIR is a party's directory from `geoattest tls issue` (key.pem, cert.pem, ca.crt): the
// client presents that certificate and checks the verifier's against ca.crt (mutual TLS).
// CALL is `health:SERVICE` (empty SERVICE: the whole server) or `status:DEVICE_ID`.
// Prints one JSON array: per call {call, ok: true, response} or {call, ok: false, code,
// details, reason}, where reason is the `geoattest-reason` trailing metadata.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

const here = path.dirname(fileURLToPath(import.meta.url));
const [target, protoRoot, tlsDir, ...calls] = process.argv.slice(2);
if (!target || !protoRoot || !tlsDir || calls.length === 0) {
  console.error("usage: node client.mjs TARGET PROTO_ROOT TLS_DIR CALL...");
  process.exit(2);
}

const options = { keepCase: true, longs: String, enums: String, defaults: true };
const load = (file, dir) =>
  grpc.loadPackageDefinition(protoLoader.loadSync(file, { ...options, includeDirs: [dir] }));

const geoattest = load("geoattest/v1/verifier_service.proto", protoRoot);
const healthPkg = load("health.proto", here);
const read = (name) => fs.readFileSync(path.join(tlsDir, name));
const credentials = grpc.credentials.createSsl(
  read("ca.crt"),
  read("key.pem"),
  read("cert.pem"),
);
const verifier = new geoattest.geoattest.v1.VerifierService(target, credentials);
const health = new healthPkg.grpc.health.v1.Health(target, credentials);

function unary(client, method, request) {
  return new Promise((resolve) => {
    const deadline = new Date(Date.now() + 15000);
    client[method](request, { deadline }, (error, response) => {
      if (error) {
        const reason = error.metadata?.get("geoattest-reason")?.[0];
        resolve({
          ok: false,
          code: grpc.status[error.code],
          details: error.details,
          reason: reason === undefined ? "" : String(reason),
        });
      } else {
        resolve({ ok: true, response });
      }
    });
  });
}

const results = [];
for (const call of calls) {
  const split = call.indexOf(":");
  const kind = call.slice(0, split);
  const argument = call.slice(split + 1);
  let outcome;
  if (kind === "health") {
    outcome = await unary(health, "Check", { service: argument });
  } else if (kind === "status") {
    outcome = await unary(verifier, "GetDeviceStatus", { device_id: argument });
  } else {
    console.error(`unknown call ${JSON.stringify(call)}`);
    process.exit(2);
  }
  results.push({ call, ...outcome });
}
verifier.close();
health.close();
console.log(JSON.stringify(results));
