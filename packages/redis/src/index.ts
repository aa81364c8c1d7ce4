/**
 * @weft/redis: a pub/sub adapter that carries @weft/core topics between processes over Redis.
 * @packageDocumentation
 */
export {
  decodeEnvelope,
  ENVELOPE_MARKER,
  type Envelope,
  encodeEnvelope,
  HEADER_LENGTH,
  NODE_ID_LENGTH,
} from './envelope.js';
export {
  RedisAdapter,
  type RedisAdapterClientOptions,
  RedisAdapterError,
  type RedisAdapterEventMap,
  type RedisAdapterOptions,
  type RedisAdapterUrlOptions,
  type RedisClient,
  type RedisConnectionRole,
} from './redis-adapter.js';
