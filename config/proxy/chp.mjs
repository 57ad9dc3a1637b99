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

import { realpathSync } from "node:fs";
import http from "node:http";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [, script, chpCommand, ...options] = process.argv;
if (!chpCommand) {
  console.error(`usage: node ${script} PATH/TO/configurable-http-proxy [options]`);
  process.exit(2);
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

// CHP's command line reads process.argv: as if it had been started itself.
process.argv = [process.argv[0], chpBin, ...options];
await import(pathToFileURL(chpBin).href);
