// Loaded with `node --require` by the test harness only.
// The wasm schema engine arms a 10 s JS timer for its advisory-lock timeout and never clears it,
// so a successful `migrate deploy` lingers 10 s before exiting. Unref'ing long timers lets the
// process exit as soon as its work is done; a timer still fires while a query is pending,
// so the P1002 lock timeout behaves as before.
'use strict'
const originalSetTimeout = global.setTimeout
global.setTimeout = function setTimeoutUnrefLong (fn, ms, ...rest) {
  const timer = originalSetTimeout(fn, ms, ...rest)
  if (typeof ms === 'number' && ms >= 5000 && timer && typeof timer.unref === 'function') timer.unref()
  return timer
}
