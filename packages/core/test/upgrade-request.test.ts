import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { acceptKey } from '../src/handshake/accept-key.js';
import { parseSubprotocols } from '../src/handshake/subprotocols.js';
import { checkUpgradeRequest } from '../src/handshake/upgrade-request.js';

function request(headers: Record<string, string>, method = 'GET'): IncomingMessage {
  const lower = Object.fromEntries(
    Object.entries(headers).map(([name, value]) => [name.toLowerCase(), value]),
  );
  return { method, headers: lower } as unknown as IncomingMessage;
}

const valid = {
  Upgrade: 'websocket',
  Connection: 'Upgrade',
  'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
  'Sec-WebSocket-Version': '13',
};

describe('checkUpgradeRequest (RFC 6455 §4.2.1)', () => {
  it('accepts the RFC example and computes its accept key', () => {
    const check = checkUpgradeRequest(request(valid));
    expect(check).toMatchObject({ ok: true, key: 'dGhlIHNhbXBsZSBub25jZQ==', version: 13 });
    expect(acceptKey('dGhlIHNhbXBsZSBub25jZQ==')).toBe('s3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
  });

  it('accepts header values in any case, a Connection list, and version 8', () => {
    expect(
      checkUpgradeRequest(
        request({
          ...valid,
          Upgrade: 'WebSocket',
          Connection: 'keep-alive, Upgrade',
          'Sec-WebSocket-Version': '8',
        }),
      ),
    ).toMatchObject({
      ok: true,
      version: 8,
    });
  });

  const rejections: Array<[string, Record<string, string>, number, string?]> = [
    ['no Upgrade header', { ...valid, Upgrade: '' }, 400],
    ['Upgrade other than websocket', { ...valid, Upgrade: 'h2c' }, 400],
    ['Connection without upgrade', { ...valid, Connection: 'keep-alive' }, 400],
    [
      'no Sec-WebSocket-Key',
      { Upgrade: 'websocket', Connection: 'Upgrade', 'Sec-WebSocket-Version': '13' },
      400,
    ],
    ['a key that is not 16 bytes', { ...valid, 'Sec-WebSocket-Key': 'c2hvcnQ=' }, 400],
    [
      'a key that is not base64',
      { ...valid, 'Sec-WebSocket-Key': '!!!!!!!!!!!!!!!!!!!!!!==' },
      400,
    ],
    [
      'no version',
      {
        Upgrade: 'websocket',
        Connection: 'Upgrade',
        'Sec-WebSocket-Key': valid['Sec-WebSocket-Key'],
      },
      400,
      '13, 8',
    ],
    ['version 12', { ...valid, 'Sec-WebSocket-Version': '12' }, 426, '13, 8'],
    ['version garbage', { ...valid, 'Sec-WebSocket-Version': 'x' }, 426, '13, 8'],
    ['a malformed subprotocol list', { ...valid, 'Sec-WebSocket-Protocol': 'chat, , x' }, 400],
    ['a duplicated subprotocol', { ...valid, 'Sec-WebSocket-Protocol': 'chat, chat' }, 400],
  ];
  for (const [name, headers, status, versions] of rejections) {
    it(`answers ${name} with ${status}`, () => {
      const check = checkUpgradeRequest(
        request(Object.fromEntries(Object.entries(headers).filter(([, v]) => v !== ''))),
      );
      expect(check.ok).toBe(false);
      if (check.ok) return;
      expect(check.status).toBe(status);
      expect(check.message.length).toBeGreaterThan(0);
      if (versions) expect(check.headers?.['Sec-WebSocket-Version']).toBe(versions);
    });
  }

  it('answers a method other than GET with 405', () => {
    expect(checkUpgradeRequest(request(valid, 'POST'))).toMatchObject({ ok: false, status: 405 });
  });
});

describe('parseSubprotocols', () => {
  it('keeps the client order and trims spaces', () => {
    expect([...(parseSubprotocols('b, a,c') ?? [])]).toEqual(['b', 'a', 'c']);
  });
  it('refuses separators inside a token', () => {
    expect(parseSubprotocols('a b')).toBeNull();
    expect(parseSubprotocols('a;b')).toBeNull();
  });
});
