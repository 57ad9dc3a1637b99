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

import { realpathSync } from "node:fs";
import http from "node:http";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [, script, chpCommand, ...arguments_] = process.argv;
if (!chpCommand) {
  console.error(
    `usage: node ${script} PATH/TO/configurable-http-proxy [--upstream-idle-timeout MS] [options]`,
  );
  process.exit(2);
}

const UPSTREAM_IDLE_OPTION = "--upstream-idle-timeout";
/** How long (ms) a free upstream connection is kept: well below tornado's idle timeout. */
let upstreamIdleMs = 60_000;
/** CHP's own options: the command line without this script's option. */
const options = [];
for (let i = 0; i < arguments_.length; i++) {
  const argument = arguments_[i];
  if (argument !== UPSTREAM_IDLE_OPTION && !argument.startsWith(`${UPSTREAM_IDLE_OPTION}=`)) {
    options.push(argument);
    continue;
  }
  const value = argument.includes("=")
    ? argument.slice(argument.indexOf("=") + 1)
    : arguments_[++i];
  upstreamIdleMs = Number(value);
  if (!Number.isSafeInteger(upstreamIdleMs) || upstreamIdleMs <= 0) {
    console.error(`${script}: ${UPSTREAM_IDLE_OPTION} takes milliseconds > 0, got ${value}`);
    process.exit(2);
  }
}
// node_modules/.bin/configurable-http-proxy is a link to <package>/bin/configurable-http-proxy
const chpBin = realpathSync(chpCommand);
const chpLib = path.join(path.dirname(chpBin), "..", "lib", "configproxy.js");
const { ConfigurableProxy } = await import(pathToFileURL(chpLib).href);

const GUARDED = ["handleProxyWeb", "handleProxyWs", "handleApiRequest", "handleProxyError"];
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

const { handleProxyWeb, handleProxyWs, handleApiRequest, handleProxyError } =
  ConfigurableProxy.prototype;

ConfigurableProxy.prototype.handleProxyWeb = function (req, res) {
  if (decodablePath(req.url)) return handleProxyWeb.call(this, req, res);
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
  // CHP asks its error target for `<code>?url=<the request's URL>`, and the hub logs that URL:
  // a query may carry a token (`?token=`). The error page gets the path only.
  if (req && typeof req.url === "string") req.url = req.url.split("?", 1)[0];
  return handleProxyError.call(this, code, kind, req, res, e);
};

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
