// A fast local App for the `peers` benchmark, in Node.js: answers 200 to every request (keep-alive)
// and notes when each order arrived. Same result file as sink.py:
//
//     node benchmarks/sink.js PORT RESULT_FILE
//
// writes {"arrivals": {order_id: arrival_time}, "duplicates": n, "requests": n} on SIGTERM.
"use strict";
const http = require("http");
const fs = require("fs");

const [port, resultFile] = process.argv.slice(2);
const arrivals = Object.create(null);
const keys = Object.create(null);
let requests = 0;
const body = '{"ok":true,"received":true}';

const server = http.createServer((req, res) => {
  req.on("data", () => {});
  req.on("end", () => {
    requests += 1;
    const id = req.url.split("/").pop();
    if (!(id in arrivals)) arrivals[id] = Date.now() / 1000;
    const key = req.headers["idempotency-key"];
    if (key) keys[key] = (keys[key] || 0) + 1;
    res.writeHead(200, { "Content-Type": "application/json", "Content-Length": body.length });
    res.end(body);
  });
});
server.keepAliveTimeout = 60000;
server.listen(Number(port), "127.0.0.1", () => console.log("ready"));
process.on("SIGTERM", () => {
  const duplicates = Object.values(keys).filter((c) => c > 1).length;
  fs.writeFileSync(resultFile, JSON.stringify({ arrivals, duplicates, requests }));
  process.exit(0);
});
