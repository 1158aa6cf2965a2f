// kafkajs as its users run it: produce files, or consume records, with a client JSON.
//
//   node kafkajs_client.mjs produce CONFIG.json TOPIC DIR
//   node kafkajs_client.mjs consume CONFIG.json TOPIC GROUP COUNT TIMEOUT_S
//
// CONFIG.json is what `kafka user add --format kafka-python` writes; kafkajs
// takes the same facts in its own shape (brokers, ssl.ca, sasl). Output as
// tests/clients/driver.py's. KAFKAJS_HOME is the folder kafkajs was installed into.
import { createHash } from "node:crypto";
import { readFileSync, readdirSync } from "node:fs";
import { createRequire } from "node:module";
import { join, parse } from "node:path";

const require = createRequire(join(process.env.KAFKAJS_HOME, "package.json"));
const { Kafka, logLevel } = require("kafkajs");

const [verb, config, topic, ...rest] = process.argv.slice(2);
const kw = JSON.parse(readFileSync(config, "utf8"));

function kafkaConfig() {
  const out = {
    clientId: "alertbench-matrix",
    brokers: kw.bootstrap_servers,
    logLevel: logLevel.NOTHING,
  };
  if (kw.security_protocol.endsWith("SSL")) {
    out.ssl = { ca: [readFileSync(kw.ssl_cafile, "utf8")], rejectUnauthorized: true };
    if (kw.ssl_check_hostname === false) out.ssl.checkServerIdentity = () => undefined;
  }
  if (kw.security_protocol.startsWith("SASL")) {
    out.sasl = {
      mechanism: kw.sasl_mechanism.toLowerCase(),
      username: kw.sasl_plain_username,
      password: kw.sasl_plain_password,
    };
  }
  return out;
}

async function produce(kafka, folder) {
  const producer = kafka.producer();
  await producer.connect();
  const names = readdirSync(folder).sort();
  for (const name of names) {
    await producer.send({
      topic,
      acks: -1,
      messages: [{ key: parse(name).name, value: readFileSync(join(folder, name)) }],
    });
  }
  await producer.disconnect();
  console.log(JSON.stringify({ sent: names.length }));
}

async function consume(kafka, group, count, timeoutS) {
  const consumer = kafka.consumer({ groupId: group });
  let seen = 0;
  let failed = null;
  consumer.on(consumer.events.CRASH, (e) => { failed = e.payload.error; });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ message }) => {
      const value = message.value || Buffer.alloc(0);
      const sha256 = createHash("sha256").update(value).digest("hex");
      console.log(JSON.stringify({ key: message.key.toString(), sha256, size: value.length }));
      seen += 1;
    },
  });
  const deadline = Date.now() + timeoutS * 1000;
  while (seen < count && Date.now() < deadline && failed === null) {
    await new Promise((r) => setTimeout(r, 200));
  }
  await consumer.disconnect();
  if (failed !== null) throw failed;
}

// kafkajs retries a connection it cannot make for long: give up after the cell's time.
const limitS = verb === "consume" ? Number(rest[2]) + 5 : 90;
setTimeout(() => {
  console.log(JSON.stringify({ error: "TimeoutError: no answer in time (the client kept retrying)" }));
  process.exit(1);
}, limitS * 1000).unref();

try {
  const kafka = new Kafka(kafkaConfig());
  if (verb === "produce") await produce(kafka, rest[0]);
  else await consume(kafka, rest[0], Number(rest[1]), Number(rest[2]));
} catch (e) {
  console.log(JSON.stringify({ error: `${e.name}: ${e.message}` }));
  process.exit(1);
}
process.exit(0);
