#!/usr/bin/env node
// configurable-http-proxy with a guard against URLs whose path is not valid percent-encoding.
//
//   node config/proxy/chp.mjs PATH/TO/configurable-http-proxy [CHP's options ...]
//
// CHP routes a request by decodeURIComponent() of its path (ConfigurableProxy.targetForReq in
// lib/configproxy.js). A path such as /hub/%c0%ae (an overlong UTF-8 sequence) makes that
// throw "URIError: URI malformed"; CHP answers 500 (through its --error-target, the hub's
// /hub/error/500 page) and logs a stack trace, for any client, logged in or not. This
// wrapper answers such requests 400 with a short message before CHP routes them, for web
// requests, websocket upgrades and requests to CHP's REST API, then runs CHP's own command
// line unchanged (same options, same process: JupyterHub's pid file and signals reach CHP).
//
// The guard replaces methods of CHP's ConfigurableProxy class, which is not a public API:
// when a CHP release renames them, this script stops with a message instead of running
// without the guard.
//
// Upstream connections. CHP keeps its connections to the hub, the erc service and sessions
// alive (an http.Agent with keepAlive and no timeout): a connection that is free stays in the
// pool until the upstream closes it. When the pool lends it to a request just as the upstream
// closes it, the request fails and CHP answers it 503 "socket hang up" (the race node's
// documentation describes at `request.reusedSocket`). Two rules keep the pool from lending a
// connection that its upstream closes:
// - an upstream that closes a connection right after an answer says so (`Connection: close`),
//   and the agent then does not keep it (the erc service: BaseHandler.close_after_error);
// - an upstream closes an idle connection only after its idle timeout (tornado's
//   idle_connection_timeout: 3600 s by default, the erc service's is set in
//   erchub.services.app); this script makes the pool close a connection that has been free
//   for --upstream-idle-timeout ms (default 60 s) itself, long before. node does the same on
//   its own only for an upstream that announces its timeout (`Keep-Alive: timeout=N`), which
//   tornado does not. The option is this script's; CHP never sees it.
//
// Upstreams with several addresses. A target's host name may name several replicas (Docker
// Swarm's dnsrr endpoint mode: the erc service's name resolves to each of its tasks, and a task
// that has died stays in the answer until Swarm notices). Two rules make the proxy move on from
// a replica that is gone, as nginx's `proxy_next_upstream error timeout` does:
// - connecting tries every address of the name in turn, the next one on a connect error
//   (ECONNREFUSED, EHOSTUNREACH, ...) or when one has not answered within 250 ms: node's
//   autoSelectFamily (net.setDefaultAutoSelectFamily), off by default in node 18. No byte of
//   the request has gone upstream then, so this holds for every method.
// - a GET, HEAD or OPTIONS request without a body whose upstream connection fails before any
//   answer came back (refused, reset, "socket hang up": the replica died while it had the
//   request, or the pool lent a connection that the replica's death had closed) is routed and
//   sent again, up to --upstream-attempts times in all (default 3), before the proxy answers
//   503. Other methods are not repeated: their upstream may have acted on them.
// An answer that has begun is never repeated; websockets are not either.

import { realpathSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [, script, chpCommand, ...arguments_] = process.argv;
/** This script's options, CHP never sees them: name -> [value, what the value is]. */
const OWN_OPTIONS = {
  // how long (ms) a free upstream connection is kept: well below tornado's idle timeout
  "--upstream-idle-timeout": [60_000, "milliseconds"],
  // how often in all an idempotent request is sent upstream when its connection fails
  "--upstream-attempts": [3, "a count"],
};
if (!chpCommand) {
  const own = Object.keys(OWN_OPTIONS).map((name) => `[${name} N]`);
  console.error(`usage: node ${script} PATH/TO/configurable-http-proxy ${own.join(" ")} [options]`);
  process.exit(2);
}
const settings = Object.fromEntries(
  Object.entries(OWN_OPTIONS).map(([name, [value]]) => [name, value]),
);
/** CHP's own options: the command line without this script's options. */
const options = [];
for (let i = 0; i < arguments_.length; i++) {
  const argument = arguments_[i];
  const name = Object.keys(OWN_OPTIONS).find(
    (own) => argument === own || argument.startsWith(`${own}=`),
  );
  if (name === undefined) {
    options.push(argument);
    continue;
  }
  const value = argument.includes("=")
    ? argument.slice(argument.indexOf("=") + 1)
    : arguments_[++i];
  settings[name] = Number(value);
  if (!Number.isSafeInteger(settings[name]) || settings[name] <= 0) {
    console.error(`${script}: ${name} takes ${OWN_OPTIONS[name][1]} > 0, got ${value}`);
    process.exit(2);
  }
}
const upstreamIdleMs = settings["--upstream-idle-timeout"];
const upstreamAttempts = settings["--upstream-attempts"];
// node_modules/.bin/configurable-http-proxy is a link to <package>/bin/configurable-http-proxy
const chpBin = realpathSync(chpCommand);
const chpLib = path.join(path.dirname(chpBin), "..", "lib", "configproxy.js");
const { ConfigurableProxy } = await import(pathToFileURL(chpLib).href);

const GUARDED = [
  "handleProxy",
  "handleProxyWeb",
  "handleProxyWs",
  "handleApiRequest",
  "handleProxyError",
];
for (const name of GUARDED) {
  if (typeof ConfigurableProxy?.prototype?.[name] !== "function") {
    console.error(
      `${script}: ConfigurableProxy.${name} is missing in ${chpLib}: ` +
        "this configurable-http-proxy is not one the guard knows; update config/proxy/chp.mjs",
    );
    process.exit(1);
  }
}

const MESSAGE =
  "Bad Request: the URL's path is not valid percent-encoded UTF-8 (such as %c0%ae).\n";

/** Whether CHP can route `url`: its path decodes as CHP decodes it (targetForReq). */
function decodablePath(url) {
  try {
    decodeURIComponent(new URL(url, "http://example.com").pathname);
    return true;
  } catch {
    return false;
  }
}

/** The path of `url` for the log: without its query (which may carry a token), shortened. */
function logPath(url) {
  const pathOnly = String(url).split("?", 1)[0];
  return pathOnly.length > 200 ? pathOnly.slice(0, 200) + "..." : pathOnly;
}

function refuse(proxy, req) {
  proxy.log.warn("400 %s %s malformed percent-encoding", req.method, logPath(req.url));
}

/** Errors of an upstream connection that has given no answer: refused, unreachable, reset. */
const CONNECTION_ERRORS = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EPIPE",
  "ETIMEDOUT",
]);
/** Methods whose request may be sent twice (RFC 9110's safe methods). */
const REPEATABLE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);
const ATTEMPTS = Symbol("upstream attempts");
const REQUEST_URL = Symbol("the request's URL as it came");

/** Whether CHP's 503 for `req` may become another attempt upstream (see the top). */
function repeatable(code, kind, req, res, e) {
  return (
    code === 503 &&
    kind === "web" &&
    CONNECTION_ERRORS.has(e?.code) &&
    REPEATABLE_METHODS.has(req.method) &&
    !req.headers["transfer-encoding"] &&
    !(Number(req.headers["content-length"]) > 0) &&
    typeof req[REQUEST_URL] === "string" &&
    (req[ATTEMPTS] ?? 1) < upstreamAttempts &&
    !req.socket.destroyed &&
    !res.headersSent
  );
}

const { handleProxyWeb, handleProxyWs, handleApiRequest, handleProxyError } =
  ConfigurableProxy.prototype;

ConfigurableProxy.prototype.handleProxyWeb = function (req, res) {
  if (decodablePath(req.url)) {
    // CHP cuts the route's prefix off req.url when it proxies (--no-include-prefix): a
    // repeated attempt starts from the URL as it came
    req[REQUEST_URL] = req.url;
    return handleProxyWeb.call(this, req, res);
  }
  refuse(this, req);
  res.writeHead(400, {
    "Content-Type": "text/plain; charset=utf-8",
    "Content-Length": Buffer.byteLength(MESSAGE),
    "X-Content-Type-Options": "nosniff",
  });
  res.end(MESSAGE);
};

ConfigurableProxy.prototype.handleProxyWs = function (req, socket, head) {
  if (decodablePath(req.url)) return handleProxyWs.call(this, req, socket, head);
  refuse(this, req);
  socket.end(
    `HTTP/1.1 400 ${http.STATUS_CODES[400]}\r\n` +
      "Content-Type: text/plain; charset=utf-8\r\n" +
      `Content-Length: ${Buffer.byteLength(MESSAGE)}\r\n` +
      "Connection: close\r\n\r\n" +
      MESSAGE,
  );
};

ConfigurableProxy.prototype.handleApiRequest = function (req, res) {
  // the API decodes path arguments too (/api/routes/<path>); a throw there left the request
  // without an answer
  if (decodablePath(req.url)) return handleApiRequest.call(this, req, res);
  refuse(this, req);
  res.writeHead(400, { "Content-Type": "text/plain; charset=utf-8" });
  res.end(MESSAGE);
};

ConfigurableProxy.prototype.handleProxyError = function (code, kind, req, res, e) {
  if (repeatable(code, kind, req, res, e)) {
    req[ATTEMPTS] = (req[ATTEMPTS] ?? 1) + 1;
    this.log.warn(
      "%s %s: upstream %s, attempt %d of %d",
      req.method,
      logPath(req[REQUEST_URL]),
      e.code,
      req[ATTEMPTS],
      upstreamAttempts,
    );
    req.url = req[REQUEST_URL];
    // CHP routes it again: a new lookup of the target's name, and a connection from the
    // pool or a new one (the one that failed is gone from the pool)
    return this.handleProxy("web", req, res);
  }
  // CHP asks its error target for `<code>?url=<the request's URL>`, and the hub logs that URL:
  // a query may carry a token (`?token=`). The error page gets the path only.
  if (req && typeof req.url === "string") req.url = req.url.split("?", 1)[0];
  return handleProxyError.call(this, code, kind, req, res, e);
};

// A name's addresses in turn when connecting (see the top); node 18.18 and later have it.
if (typeof net.setDefaultAutoSelectFamily !== "function") {
  console.error(`${script}: this node has no net.setDefaultAutoSelectFamily (node >= 18.18)`);
  process.exit(1);
}
net.setDefaultAutoSelectFamily(true);

// Free upstream connections close after upstreamIdleMs. keepSocketAlive and reuseSocket are
// http.Agent's documented hooks (called when a socket becomes free, and when it is lent
// again); every agent of this process is one of CHP's upstream agents.
const { keepSocketAlive, reuseSocket } = http.Agent.prototype;
if (typeof keepSocketAlive !== "function" || typeof reuseSocket !== "function") {
  console.error(`${script}: this node's http.Agent has no keepSocketAlive/reuseSocket`);
  process.exit(1);
}
http.Agent.prototype.keepSocketAlive = function (socket) {
  const keep = keepSocketAlive.call(this, socket);
  // node has set the timeout of a free socket from the agent's `timeout` option or the
  // upstream's `Keep-Alive: timeout=` hint, or to 0 (never); a free socket that times out is
  // destroyed by the agent. A shorter timeout than ours stays.
  if (keep && !(socket.timeout > 0 && socket.timeout <= upstreamIdleMs)) {
    socket.setTimeout(upstreamIdleMs);
  }
  return keep;
};
http.Agent.prototype.reuseSocket = function (socket, request) {
  reuseSocket.call(this, socket, request);
  // lent again: no idle limit while in use (a long answer, such as a log stream, is not idle)
  socket.setTimeout(this.options.timeout || 0);
};

// CHP's command line reads process.argv: as if it had been started itself.
process.argv = [process.argv[0], chpBin, ...options];
await import(pathToFileURL(chpBin).href);
