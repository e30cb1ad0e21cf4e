// A client-role fabric peer written from docs/protocol.md alone: HELLO, CALL, SEND, SUB.
// Usage: node client.js SEED_ENDPOINT   (prints one JSON line per step)
"use strict";
const zmq = require("zeromq");
const { encode, decode } = require("@msgpack/msgpack");
const crypto = require("crypto");

const id = crypto.randomBytes(16);
const rid = Buffer.concat([Buffer.from([0x02]), id, Buffer.from([0])]);
const head = (type, header) => Buffer.concat([Buffer.from([0xaa, 0xfb, 1, type]), Buffer.from(encode(header))]);
const parse = (frame) => ({ version: frame[2], type: frame[3], header: decode(frame.subarray(4)) });
const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

async function main() {
  const seed = process.argv[2];
  const hello = new zmq.Dealer({ routingId: rid, linger: 0, receiveTimeout: 10000 });
  hello.connect(seed);
  await hello.send([head(1, { s: id, vn: 1, vx: 1, ro: 1, in: Date.now(), nm: "node-js" })]);
  const [welcome] = await hello.receive();
  const w = parse(welcome);
  if (w.type !== 2) throw new Error("expected WELCOME, got type " + w.type);
  out({ step: "welcome", name: w.header.nm, version: w.header.v });

  const coord = new zmq.Dealer({ routingId: rid, linger: 0, receiveTimeout: 10000 });
  coord.connect(w.header.ep.coordination[1]);
  await coord.send([head(5, { s: id, c: "coordination", sv: "echo", i: 1, ct: 1 }), Buffer.from(encode({ from: "node", n: [1, 2, 3] }))]);
  const [replyHead, body] = await coord.receive();
  const r = parse(replyHead);
  out({ step: "reply", type: r.type, corr: r.header.r, value: decode(body) });

  await coord.send([head(5, { s: id, c: "coordination", sv: "boom", i: 2, ct: 1 }), Buffer.from(encode(7))]);
  const [errHead] = await coord.receive();
  const e = parse(errHead);
  out({ step: "error", type: e.type, code: e.header.ec, etype: e.header.et });

  await coord.send([head(4, { s: id, c: "coordination", q: 1 }), Buffer.from("hello from node")]);
  out({ step: "sent" });

  const sub = new zmq.Subscriber({ linger: 0, receiveTimeout: 15000 });
  sub.connect(w.header.ep.events[1]);
  sub.subscribe("");
  out({ step: "subscribed" });
  const [topic, pubHead, payload] = await sub.receive();
  const p = parse(pubHead);
  out({ step: "published", type: p.type, topic: topic.toString(), payload: payload.toString() });

  await hello.send([head(10, { s: id })]);
  hello.close(); coord.close(); sub.close();
}
main().catch((err) => { out({ step: "failed", error: String(err) }); process.exit(1); });
