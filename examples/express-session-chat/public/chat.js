// The chat page: one WebSocket to the current room. The session cookie goes with the
// handshake like with any same-origin request, so the page needs no token of its own.

const LOGGED_OUT = 4001;
const $ = (id) => document.getElementById(id);

let socket = null;
let room = new URLSearchParams(location.search).get('room') || 'lobby';

function connect() {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const current = new WebSocket(
    `${scheme}://${location.host}/ws/rooms/${encodeURIComponent(room)}`,
  );
  socket = current;
  setStatus('connecting');
  $('messages').replaceChildren();
  current.addEventListener('open', () => setStatus(`connected to ${room}`));
  current.addEventListener('message', (event) => show(JSON.parse(event.data)));
  current.addEventListener('close', (event) => {
    if (socket !== current) return;
    document.body.dataset.closeCode = String(event.code);
    if (event.code === LOGGED_OUT) setStatus('logged out');
    else if (event.code === 1006 && !current.opened) setStatus('refused');
    else setStatus('disconnected');
  });
  current.addEventListener('open', () => {
    current.opened = true;
  });
}

function show(message) {
  if (message.type === 'welcome') {
    $('user').textContent = message.user;
    renderRooms(message.rooms);
  } else if (message.type === 'said') {
    const item = document.createElement('li');
    const who = document.createElement('b');
    who.textContent = message.user;
    item.append(who, `: ${message.text}`);
    $('messages').append(item);
  } else if (message.type === 'presence') {
    $('presence').replaceChildren(
      ...message.users.map((user) =>
        Object.assign(document.createElement('li'), { textContent: user }),
      ),
    );
  } else if (message.type === 'error') {
    setStatus(message.message);
  }
}

function renderRooms(rooms) {
  $('rooms').replaceChildren(
    ...rooms.map((name) => {
      const button = Object.assign(document.createElement('button'), {
        type: 'button',
        textContent: `#${name}`,
        id: `room-${name}`,
      });
      button.setAttribute('aria-pressed', String(name === room));
      button.addEventListener('click', () => {
        if (name === room) return;
        room = name;
        history.replaceState(null, '', `?room=${encodeURIComponent(room)}`);
        socket.close(1000, 'Changing rooms');
        connect();
      });
      return button;
    }),
  );
}

function setStatus(text) {
  $('status').textContent = text;
}

$('say').addEventListener('submit', (event) => {
  event.preventDefault();
  const text = $('text').value.trim();
  if (text === '' || socket?.readyState !== WebSocket.OPEN) return;
  socket.send(JSON.stringify({ type: 'say', text }));
  $('text').value = '';
});

connect();
