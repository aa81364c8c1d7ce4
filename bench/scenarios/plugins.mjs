/**
 * The framework plugins, each on its framework: `echo` and `handshake` as they are (same
 * load, same ws client, same server side), run against three peers, the plugin, bare
 * @weft/core and the plugin's ws-based counterpart. The plugin is the subject of the ratios,
 * so `weft-fastify/weft` is what the framework and the plugin add to the engine, and
 * `weft-fastify/fastify-websocket` the comparison a Fastify user makes.
 *
 * `targets` are the goals the ratios are read against (issue 8): the plugin within 5 % of
 * bare weft per echo round trip, and its handshake at most 0.75 of its counterpart's.
 */
import echo from './echo.mjs';
import handshake from './handshake.mjs';

const PLUGINS = [
  { framework: 'fastify', subject: 'weft-fastify', counterpart: 'fastify-websocket' },
  { framework: 'express', subject: 'weft-express', counterpart: 'express-ws' },
];

function pluginScenario(base, { framework, subject, counterpart }, target) {
  return {
    ...base,
    name: `${framework}-${base.name}`,
    summary: `${base.summary}, through ${subject} against bare weft and ${counterpart}`,
    subject,
    peers: [subject, 'weft', counterpart],
    targets: [target],
  };
}

export const pluginScenarios = PLUGINS.flatMap((plugin) => [
  pluginScenario(echo, plugin, { key: 'cpu', peer: 'weft', max: 1.05 }),
  pluginScenario(handshake, plugin, { key: 'cpu', peer: plugin.counterpart, max: 0.75 }),
]);
