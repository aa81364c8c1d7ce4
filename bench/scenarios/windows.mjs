/**
 * The timing of a scenario measured in alternating windows (one with `phases`, see run.mjs):
 * each peer's first warm-up, the re-warm under load before every window, the window itself,
 * and the windows per peer and repetition. A second-long window a second away from its peer's
 * sees the same machine; a smoke run only checks that the alternation works.
 */
export function windowTiming({ smoke, warmupMs }) {
  if (smoke) return { warmupMs: 100, rewarmMs: 50, windowMs: 150, rounds: 2 };
  return { warmupMs, rewarmMs: 250, windowMs: 750, rounds: 6 };
}
