'use strict';
// Preloaded into each local Lambda worker: resolves "localhost" and every "*.localhost" name to
// 127.0.0.1. The SDK's S3 client (without forcePathStyle, as the bundles create it) addresses
// buckets whose names contain dots virtual-hosted style, "<bucket>.localhost:<port>", which the
// system resolver does not know; the local stack's front server maps such requests back to
// path style.
const dns = require('node:dns');

function isLocal(hostname) {
  return (
    typeof hostname === 'string' && (hostname === 'localhost' || hostname.endsWith('.localhost'))
  );
}

const originalLookup = dns.lookup;
dns.lookup = function lookup(hostname, options, callback) {
  if (!isLocal(hostname)) return originalLookup.apply(this, arguments);
  const cb = typeof options === 'function' ? options : callback;
  const all = typeof options === 'object' && options !== null && options.all;
  process.nextTick(() =>
    all ? cb(null, [{ address: '127.0.0.1', family: 4 }]) : cb(null, '127.0.0.1', 4),
  );
  return {};
};

const originalPromiseLookup = dns.promises.lookup;
dns.promises.lookup = function lookup(hostname, options) {
  if (!isLocal(hostname)) return originalPromiseLookup.apply(this, arguments);
  const all = typeof options === 'object' && options !== null && options.all;
  return Promise.resolve(
    all ? [{ address: '127.0.0.1', family: 4 }] : { address: '127.0.0.1', family: 4 },
  );
};
