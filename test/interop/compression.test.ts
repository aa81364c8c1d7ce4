// permessage-deflate offered and/or enabled on either side: whatever is
// negotiated, both sides must agree on it and messages must arrive intact.

import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import {
  cleanup,
  collectMessages,
  DIRECTIONS,
  endpoints,
  openPair,
  type PairOptions,
  sha256,
  toBuffer,
} from './helpers.js';

afterEach(cleanup);

const SETUPS: Array<{ name: string; options: PairOptions }> = [
  { name: 'enabled on both sides', options: { server: { perMessageDeflate: true } } },
  {
    name: 'enabled on the server only',
    options: { server: { perMessageDeflate: true }, client: { perMessageDeflate: false } },
  },
  { name: 'enabled on the client only', options: { server: { perMessageDeflate: false } } },
];

describe.each(DIRECTIONS)('permessage-deflate: $name', (dir) => {
  describe.each(SETUPS)('$name', ({ options }) => {
    it('both sides agree on the negotiated extensions', async () => {
      const pair = await openPair(dir, options);
      expect(pair.client.extensions).toBe(pair.serverSide.extensions);
    });

    it.each(['client', 'server'] as const)('%s sends: messages arrive intact', async (sender) => {
      const pair = await openPair(dir, options);
      const [from, to] = endpoints(pair, sender);
      const compressible = 'weft and ws '.repeat(100_000);
      const random = randomBytes(256 * 1024);
      const received = collectMessages(to, 4, 10_000);
      from.send(compressible);
      from.send(random);
      from.send('');
      from.send('small ✓');
      const [a, b, c, d] = await received;
      expect(a!.isBinary).toBe(false);
      expect(sha256(toBuffer(a!.data))).toBe(sha256(Buffer.from(compressible)));
      expect(b!.isBinary).toBe(true);
      expect(sha256(toBuffer(b!.data))).toBe(sha256(random));
      expect(toBuffer(c!.data).toString()).toBe('');
      expect(toBuffer(d!.data).toString()).toBe('small ✓');
    });
  });
});
