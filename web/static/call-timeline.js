// The call's timeline as performance marks ("call:<step>"), for the DevTools performance panel
// and bench/bench_browser_call.py, which reads them on both pages to show where the time from
// "let in" to the first frame goes. Marks only: nothing here changes what the call does, and a
// mark carries a step name, never a token, an address or a description.
//
// Steps: admit-sent (doctor), admitted (patient), peer-joined, pc-created, offer-created,
// offer-sent (doctor), offer-received (patient), answer-created, answer-sent (patient),
// answer-received, answer-applied (doctor), candidate-sent, candidate-received (each one; the
// first counts), ice-connected, connected (DTLS up on every transport), track.
export const MARK_PREFIX = "call:";

export function markStep(step) {
  try {
    performance.mark(MARK_PREFIX + step);
  } catch {
    // no User Timing in this browser: the call does not need it
  }
}
