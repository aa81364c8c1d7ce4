/**
 * Scenarios measured in alternating windows (those with `phases`, see run.mjs
 * runInterleaved): their timing, and the phases of a load that simply runs or not.
 */

/**
 * Each peer's first warm-up, the re-warm under load before every window, the window itself,
 * and the windows per peer and repetition. A second-long window a second away from its peer's
 * sees the same machine; a smoke run only checks that the alternation works.
 */
export function windowTiming({ smoke, warmupMs, rewarmMs = 250, windowMs = 750, rounds = 6 }) {
  if (smoke) return { warmupMs: 100, rewarmMs: 50, windowMs: 150, rounds: 2 };
  return { warmupMs, rewarmMs, windowMs, rounds };
}

/**
 * The phases of a steady load that `start` turns on and `stop` off (stop returns fields for
 * metrics(), and may throw): warm runs it unmeasured, measure runs it for a re-warm and one
 * window.
 */
export function steadyPhases({ prepare, start, stop }) {
  return {
    prepare,
    async warm(ctx, ms) {
      await start(ctx);
      await ctx.sleep(ms);
      await stop(ctx);
    },
    async measure(ctx, { rewarmMs, windowMs }) {
      await start(ctx);
      await ctx.sleep(rewarmMs);
      const window = await ctx.window(windowMs);
      return { ...window, ...(await stop(ctx)) };
    },
  };
}
