import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { PubSubAdapter, PubSubNode } from '@weft/core';
import { Redis, type RedisOptions } from 'ioredis';
import { decodeEnvelope, encodeEnvelope, NODE_ID_LENGTH } from './envelope.js';

/** An ioredis client, whatever its `replyMapping`. */
export type RedisClient = Redis | Redis<'resp3'>;

/** Which of the adapter's two Redis connections an error is about (null: neither). */
export type RedisConnectionRole = 'publisher' | 'subscriber';

interface CommonOptions {
  /**
   * Put before every topic to make its Redis channel name, so several apps (or several
   * environments) can share one Redis. Default `'weft:'`: topic `room:42` is channel
   * `weft:room:42`. Every node that should see a topic must use the same prefix.
   */
  prefix?: string;
  /**
   * How long a PUBLISH may wait for Redis's reply before its promise rejects, in milliseconds.
   * Covers a Redis that stopped answering without closing the connection. Default 5000;
   * 0 turns the bound off.
   */
  publishTimeout?: number;
}

/** The adapter opens and owns both connections. */
export interface RedisAdapterUrlOptions extends CommonOptions {
  /** `redis://[[user]:password@]host[:port][/db]` or `rediss://` for TLS. */
  url: string;
  /**
   * More ioredis options for both connections (TLS, retryStrategy, connectTimeout, ...). The
   * adapter overrides the few that its failure behaviour depends on: see the README.
   */
  redisOptions?: RedisOptions;
  client?: never;
}

/** Publishes through your client and subscribes on a `client.duplicate()` it owns. */
export interface RedisAdapterClientOptions extends CommonOptions {
  /** Stays yours: `close()` does not quit it. */
  client: RedisClient;
  url?: never;
  redisOptions?: never;
}

export type RedisAdapterOptions = RedisAdapterUrlOptions | RedisAdapterClientOptions;

/** The events of a RedisAdapter and their arguments. */
export interface RedisAdapterEventMap {
  /**
   * Connection trouble (lost, refused, auth failed, gave up), a failed SUBSCRIBE, a message on
   * a weft channel that is not a weft message, or a server that threw while taking a delivery.
   * Reported once per outage and connection, not once per reconnection attempt. Without a
   * listener it becomes a process warning, never an uncaught exception.
   */
  error: [error: RedisAdapterError];
  /** Both connections are up and every topic held by a local socket is subscribed again. */
  ready: [];
}

/** Every error the adapter reports or rejects with. */
export class RedisAdapterError extends Error {
  override readonly name = 'RedisAdapterError';
  /** The connection it is about, or null when it is about neither. */
  readonly connection: RedisConnectionRole | null;

  constructor(message: string, connection: RedisConnectionRole | null, cause?: unknown) {
    super(`@weft/redis: ${message}`, cause === undefined ? undefined : { cause });
    this.connection = connection;
  }
}

/**
 * What the adapter's failure behaviour needs from a connection, whoever created it: a command
 * is never parked in a queue while Redis is away (it fails now, or on the first reconnection
 * attempt if it was already written), and the subscriber's channels are restored by the
 * adapter itself, from the topics local sockets hold at that moment.
 */
const NO_QUEUES = {
  enableOfflineQueue: false,
  maxRetriesPerRequest: 0,
  autoResendUnfulfilledCommands: false,
  lazyConnect: false,
} as const satisfies RedisOptions;
const SUBSCRIBER_OPTIONS = { ...NO_QUEUES, autoResubscribe: false } as const satisfies RedisOptions;

/** Channels per SUBSCRIBE / UNSUBSCRIBE command when many are restored at once. */
const CHANNELS_PER_COMMAND = 1000;
/** How long close() waits for QUIT's reply before it drops a connection. */
const QUIT_TIMEOUT = 1000;
const DEFAULT_PUBLISH_TIMEOUT = 5000;

const noop = (): void => {};

/**
 * Carries weft topics between processes over Redis pub/sub. Give one instance to each
 * `WebSocketServer({ pubsub })`; several servers in one process may share an instance.
 *
 * A topic is a Redis channel (`prefix` + topic), subscribed while at least one local socket of
 * any attached server holds it. A message carries the publishing adapter's random id, so an
 * adapter skips its own messages: its servers already had them. Each node therefore gets every
 * message once.
 */
export class RedisAdapter extends EventEmitter<RedisAdapterEventMap> implements PubSubAdapter {
  /** This adapter's id on the wire (hex), random per instance. */
  readonly id: string;
  /** The channel prefix in use. */
  readonly prefix: string;

  readonly #nodeId: Buffer;
  readonly #publishTimeout: number;
  readonly #publisher: RedisClient;
  readonly #subscriber: RedisClient;
  readonly #ownsPublisher: boolean;
  /** Local subscribers: topic -> the attached servers holding it. Non-empty sets only. */
  readonly #topics = new Map<string, Set<PubSubNode>>();
  /** The SUBSCRIBE in flight for a topic, so a second server can wait for it too. */
  readonly #pending = new Map<string, Promise<void>>();
  /** The last error reported per connection in the current outage, to report each once. */
  readonly #reported = new Map<RedisConnectionRole, string>();
  /** Removes the adapter's listeners from the publisher (done on close for your `client`). */
  readonly #detachFromClient: () => void;

  #publisherUp = false;
  #subscriberUp = false;
  /** Counts subscriber connections, so a reply from a dead one is told apart. */
  #subscriberEpoch = 0;
  /** The subscriber's channels are restored on the current connection. */
  #resubscribed = false;
  #announcedReady = false;
  #foreignReported = false;
  /** Set first thing in close(), before any connection is touched. */
  #closed = false;
  #closing: Promise<void> | null = null;

  constructor(options: RedisAdapterOptions) {
    super();
    if (options === null || typeof options !== 'object') {
      throw new TypeError('@weft/redis: new RedisAdapter({ url } | { client }) needs options');
    }
    const hasUrl = options.url !== undefined;
    const hasClient = options.client !== undefined;
    if (hasUrl === hasClient) {
      throw new TypeError('@weft/redis: pass exactly one of `url` and `client`');
    }
    const prefix = options.prefix ?? 'weft:';
    if (typeof prefix !== 'string') throw new TypeError('@weft/redis: `prefix` must be a string');
    const publishTimeout = options.publishTimeout ?? DEFAULT_PUBLISH_TIMEOUT;
    if (!Number.isFinite(publishTimeout) || publishTimeout < 0) {
      throw new RangeError('@weft/redis: `publishTimeout` must be a number of milliseconds >= 0');
    }
    this.prefix = prefix;
    this.#publishTimeout = publishTimeout;
    this.#nodeId = randomBytes(NODE_ID_LENGTH);
    this.id = this.#nodeId.toString('hex');

    if (options.client !== undefined) {
      const client = options.client;
      if (typeof client.duplicate !== 'function' || typeof client.publish !== 'function') {
        throw new TypeError('@weft/redis: `client` must be an ioredis Redis instance');
      }
      this.#publisher = client;
      this.#ownsPublisher = false;
      this.#subscriber = client.duplicate(SUBSCRIBER_OPTIONS);
    } else {
      if (typeof options.url !== 'string' || options.url === '') {
        throw new TypeError('@weft/redis: `url` must be a redis:// or rediss:// URL');
      }
      const base = options.redisOptions ?? {};
      this.#publisher = new Redis(options.url, { ...base, ...NO_QUEUES });
      this.#ownsPublisher = true;
      this.#subscriber = new Redis(options.url, { ...base, ...SUBSCRIBER_OPTIONS });
    }

    this.#detachFromClient = this.#watchPublisher();
    this.#watchSubscriber();
    if (!this.#ownsPublisher) {
      if (this.#publisher.status === 'wait') this.#publisher.connect().catch(noop);
      this.#publisherUp = this.#publisher.status === 'ready';
    }
  }

  /** Both connections are up and every local topic is subscribed. */
  get isReady(): boolean {
    return this.#announcedReady;
  }

  /** Nothing to set up per server: topics are tracked as servers subscribe. */
  attach(_node: PubSubNode): void {
    this.#assertOpen('attach a server');
  }

  async detach(node: PubSubNode): Promise<void> {
    const emptied: string[] = [];
    for (const [topic, nodes] of this.#topics) {
      if (nodes.delete(node) && nodes.size === 0) {
        this.#topics.delete(topic);
        this.#pending.delete(topic);
        emptied.push(this.#channel(topic));
      }
    }
    if (emptied.length > 0) await this.#unsubscribeChannels(emptied);
  }

  subscribe(node: PubSubNode, topic: string): Promise<void> {
    if (this.#closed) {
      return Promise.reject(this.#closedError(`subscribe to topic ${JSON.stringify(topic)}`));
    }
    const nodes = this.#topics.get(topic);
    if (nodes !== undefined) {
      nodes.add(node);
      return this.#pending.get(topic) ?? Promise.resolve();
    }
    this.#topics.set(topic, new Set([node]));
    const subscribed = this.#subscribeChannels([this.#channel(topic)]);
    this.#pending.set(topic, subscribed);
    const settle = (): void => {
      if (this.#pending.get(topic) === subscribed) this.#pending.delete(topic);
    };
    subscribed.then(settle, settle);
    return subscribed;
  }

  async unsubscribe(node: PubSubNode, topic: string): Promise<void> {
    const nodes = this.#topics.get(topic);
    if (nodes === undefined || !nodes.delete(node) || nodes.size > 0) return;
    this.#topics.delete(topic);
    this.#pending.delete(topic);
    await this.#unsubscribeChannels([this.#channel(topic)]);
  }

  /**
   * Hands the message to the other servers sharing this adapter, then PUBLISHes it for the
   * other processes. Rejects at once when the publisher connection is not up (nothing is
   * queued for later), or when Redis fails or does not answer within `publishTimeout`.
   */
  async publish(node: PubSubNode, topic: string, data: Buffer, isBinary: boolean): Promise<void> {
    if (this.#closed) throw this.#closedError(`publish to topic ${JSON.stringify(topic)}`);
    this.#deliver(topic, data, isBinary, node);
    const unreachable = (cause?: unknown): RedisAdapterError =>
      new RedisAdapterError(
        `cannot publish to topic ${JSON.stringify(topic)}: Redis is not reachable (publisher ` +
          `connection ${this.#publisher.status}); only this process's subscribers got the message`,
        'publisher',
        cause,
      );
    if (this.#publisher.status !== 'ready') throw unreachable();
    const message = encodeEnvelope(this.#nodeId, data, isBinary);
    try {
      await withTimeout(
        this.#publisher.publish(this.#channel(topic), message),
        this.#publishTimeout,
      );
    } catch (error) {
      // The connection went down under the command (ioredis has not said so yet, or flushed it).
      if (this.#publisher.status !== 'ready' || isConnectionLoss(error)) throw unreachable(error);
      throw new RedisAdapterError(
        `PUBLISH to topic ${JSON.stringify(topic)} failed: ${messageOf(error)}; ` +
          `only this process's subscribers surely got the message`,
        'publisher',
        error,
      );
    }
  }

  /**
   * Stops the adapter: later subscribes and publishes reject. Quits the connections it opened
   * (the subscriber always, the publisher unless it is your `client`). Idempotent. Close the
   * servers first: a server still attached no longer hears other nodes.
   */
  close(): Promise<void> {
    if (this.#closing === null) {
      this.#closed = true;
      this.#closing = this.#close();
    }
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#topics.clear();
    this.#pending.clear();
    this.#publisherUp = false;
    this.#subscriberUp = false;
    this.#announcedReady = false;
    // Our own connections keep their listeners: an error while quitting stays handled.
    if (!this.#ownsPublisher) this.#detachFromClient();
    const owned = this.#ownsPublisher ? [this.#subscriber, this.#publisher] : [this.#subscriber];
    await Promise.all(owned.map(quit));
  }

  #channel(topic: string): string {
    return this.prefix + topic;
  }

  #assertOpen(what: string): void {
    if (this.#closed) throw this.#closedError(what);
  }

  #closedError(what: string): RedisAdapterError {
    return new RedisAdapterError(`cannot ${what}: the adapter is closed`, null);
  }

  /** Gives a message to every attached server holding `topic`, but `except`. */
  #deliver(topic: string, data: Buffer, isBinary: boolean, except: PubSubNode | null): void {
    const nodes = this.#topics.get(topic);
    if (nodes === undefined) return;
    // A copy: a delivery may end a subscription and so change the set.
    for (const node of [...nodes]) {
      if (node === except) continue;
      try {
        node.deliver(topic, data, isBinary);
      } catch (error) {
        this.#report(
          null,
          `a server threw while taking a message on topic ${JSON.stringify(topic)}`,
          error,
        );
      }
    }
  }

  #onMessage = (channel: Buffer, message: Buffer): void => {
    if (this.#closed) return;
    const name = channel.toString();
    if (!name.startsWith(this.prefix)) return;
    const envelope = decodeEnvelope(message);
    if (envelope === null) {
      if (!this.#foreignReported) {
        this.#foreignReported = true;
        this.#report(
          null,
          `ignored a message on channel ${JSON.stringify(name)} that no weft adapter wrote ` +
            `(another app using prefix ${JSON.stringify(this.prefix)}?); reported once`,
        );
      }
      return;
    }
    // Our own publish: this process's servers already had it.
    if (envelope.nodeId.equals(this.#nodeId)) return;
    this.#deliver(name.slice(this.prefix.length), envelope.data, envelope.isBinary, null);
  };

  #subscribeChannels(channels: string[]): Promise<void> {
    // Not connected: the 'ready' handler subscribes every topic held at that moment.
    if (!this.#subscriberUp) return Promise.resolve();
    return this.#sendChannels('subscribe', channels);
  }

  #unsubscribeChannels(channels: string[]): Promise<void> {
    // Not connected: a new connection starts with no channels, so there is nothing to undo.
    if (!this.#subscriberUp || this.#closed) return Promise.resolve();
    return this.#sendChannels('unsubscribe', channels);
  }

  /** One command per chunk; a failure caused by the connection dropping is not a failure. */
  async #sendChannels(command: 'subscribe' | 'unsubscribe', channels: string[]): Promise<void> {
    const epoch = this.#subscriberEpoch;
    const sent: Promise<unknown>[] = [];
    for (let i = 0; i < channels.length; i += CHANNELS_PER_COMMAND) {
      sent.push(this.#subscriber[command](...channels.slice(i, i + CHANNELS_PER_COMMAND)));
    }
    const results = await Promise.allSettled(sent);
    const failed = results.find((result) => result.status === 'rejected');
    if (failed === undefined) return;
    // The connection dropped meanwhile: the next 'ready' restores the channels held then.
    if (epoch !== this.#subscriberEpoch || !this.#subscriberUp || this.#closed) return;
    const shown =
      channels.length === 1 ? JSON.stringify(channels[0]) : `${channels.length} channels`;
    throw new RedisAdapterError(
      `${command.toUpperCase()} ${shown} failed: ${messageOf(failed.reason)}`,
      'subscriber',
      failed.reason,
    );
  }

  /** Listens to the publisher; returns what removes those listeners. */
  #watchPublisher(): () => void {
    const publisher = this.#publisher;
    const onReady = (): void => {
      this.#publisherUp = true;
      this.#reported.delete('publisher');
      this.#announceIfReady();
    };
    const onClose = (): void => {
      if (!this.#publisherUp) return;
      this.#publisherUp = false;
      this.#announcedReady = false;
      this.#report(
        'publisher',
        'lost the publisher connection to Redis; publishes are rejected until it is back',
      );
    };
    const onError = (error: Error): void => this.#report('publisher', messageOf(error), error);
    const onEnd = (): void =>
      this.#report('publisher', 'the publisher connection ended and will not reconnect');
    publisher.on('ready', onReady);
    publisher.on('close', onClose);
    publisher.on('error', onError);
    publisher.on('end', onEnd);
    return () => {
      publisher.off('ready', onReady);
      publisher.off('close', onClose);
      publisher.off('error', onError);
      publisher.off('end', onEnd);
    };
  }

  /** Listens to the subscriber (ours: its listeners stay until it is gone). */
  #watchSubscriber(): void {
    const subscriber = this.#subscriber;
    subscriber.on('messageBuffer', this.#onMessage);
    subscriber.on('ready', () => {
      if (this.#closed) return;
      this.#subscriberUp = true;
      this.#reported.delete('subscriber');
      this.#resubscribe();
    });
    subscriber.on('close', () => {
      this.#subscriberEpoch++;
      const wasUp = this.#subscriberUp;
      this.#subscriberUp = false;
      this.#resubscribed = false;
      this.#announcedReady = false;
      if (wasUp) {
        this.#report(
          'subscriber',
          'lost the subscriber connection to Redis; other nodes are not heard until it is back',
        );
      }
    });
    subscriber.on('error', (error: Error) => this.#report('subscriber', messageOf(error), error));
    subscriber.on('end', () =>
      this.#report('subscriber', 'the subscriber connection ended and will not reconnect'),
    );
  }

  /** A fresh subscriber connection has no channels: subscribe every topic held now. */
  #resubscribe(): void {
    const epoch = this.#subscriberEpoch;
    const channels = [...this.#topics.keys()].map((topic) => this.#channel(topic));
    this.#restore(channels).then(() => {
      if (epoch !== this.#subscriberEpoch || this.#closed) return;
      this.#resubscribed = true;
      this.#announceIfReady();
    });
  }

  /**
   * SUBSCRIBEs `channels`; never rejects. When Redis refuses a whole command (an ACL that
   * forbids one channel refuses them all), retries one channel at a time, so one refused topic
   * does not hold up the others; each refusal is reported.
   */
  async #restore(channels: string[]): Promise<void> {
    if (channels.length === 0) return;
    try {
      await this.#sendChannels('subscribe', channels);
      return;
    } catch {
      // below, one by one
    }
    await Promise.all(
      channels.map((channel) =>
        this.#sendChannels('subscribe', [channel]).catch((error: unknown) => {
          const cause = error instanceof RedisAdapterError ? error.cause : error;
          this.#report(
            'subscriber',
            `could not subscribe ${JSON.stringify(channel)} again: ${messageOf(cause)}`,
            cause,
          );
        }),
      ),
    );
  }

  #announceIfReady(): void {
    if (this.#announcedReady || this.#closed) return;
    if (!this.#publisherUp || !this.#subscriberUp || !this.#resubscribed) return;
    this.#announcedReady = true;
    this.emit('ready');
  }

  /**
   * Emits 'error', or a process warning when nobody listens: connection trouble must never
   * throw out of an ioredis event. Per connection, a message repeated within one outage (a
   * refused reconnection every few hundred milliseconds) is reported once.
   */
  #report(role: RedisConnectionRole | null, message: string, cause?: unknown): void {
    if (this.#closed) return;
    if (role !== null) {
      if (this.#reported.get(role) === message) return;
      this.#reported.set(role, message);
    }
    const error =
      role === null
        ? new RedisAdapterError(message, null, cause)
        : new RedisAdapterError(`${role} connection: ${message}`, role, cause);
    if (this.listenerCount('error') > 0) this.emit('error', error);
    else process.emitWarning(error);
  }
}

/** ioredis's ways of saying a command met a dead connection rather than a Redis error. */
function isConnectionLoss(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  return (
    error.name === 'MaxRetriesPerRequestError' ||
    /Stream isn't writeable|Connection is closed|Command aborted due to connection close/.test(
      error.message,
    )
  );
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** `promise`, or a rejection after `ms` (0: no bound). The late outcome is still handled. */
function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  if (ms === 0) return promise;
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`Redis did not answer within ${ms} ms (publishTimeout)`)),
      ms,
    );
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

/** QUIT when connected (bounded), then disconnect, which also stops any reconnection. */
async function quit(connection: RedisClient): Promise<void> {
  if (connection.status === 'ready') {
    await withTimeout(connection.quit(), QUIT_TIMEOUT).catch(noop);
  }
  connection.disconnect();
}
