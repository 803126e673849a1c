'use strict';
// onnxruntime-node's postinstall downloads the CUDA 12 provider from NuGet on every Linux x64 install, and a host
// that cannot reach NuGet fails `npm ci` outright (npm 10 has no way to deny one package's script; npm 11.16+ has
// allowScripts). That script calls global-agent's bootstrap() before it reads ONNXRUNTIME_NODE_INSTALL, and
// global-agent is used by nothing else here, so this project depends on this module under that name (same version, so npm dedupes onnxruntime-node's copy onto it): it makes
// "skip" the default. An explicit ONNXRUNTIME_NODE_INSTALL (e.g. `npm run setup:cuda` asking for cuda12) still
// wins. The CUDA provider comes from `npm run setup:cuda`. Proxy variables (GLOBAL_AGENT_*) are not honoured here.
function bootstrap() {
  if (!process.env.ONNXRUNTIME_NODE_INSTALL && !process.env.npm_config_onnxruntime_node_install) {
    process.env.ONNXRUNTIME_NODE_INSTALL = 'skip';
  }
  return true;
}
module.exports = { bootstrap };
