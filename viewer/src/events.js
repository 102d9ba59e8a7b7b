/* The server's latest events (segments listed, stream state) in the stats panel, from the
 * EventSource on /live/events. It is open only while the panel is, so ordinary viewers hold no
 * connection.
 *
 * create({ isOpen, address }): isOpen() says whether the panel still wants the stream when a refused one is
 * tried again; address(url) is the URL with a private stream's token (access.js), or as it is.
 * A token renewed while the stream is open is not the stream's: when the browser's own reconnection is
 * refused with the old one, the stream is opened again, with the current one. Returns { open, close, snapshot }: snapshot() has `events` (received while the panel was
 * open) and `eventStream` ('closed' | 'connecting' | 'open'). */

import { snapshot as frozen } from './snapshot.js';

const EVENTS_SHOWN = 10; // server events listed in the stats panel, newest first
const EVENTS_REOPEN_MS = 5000; // the server refused the stream (503: busy or restarting): try again

export function create({ isOpen, address = (url) => url }) {
  const list = document.getElementById('events');
  const status = document.getElementById('events-status');
  const own = { events: 0, eventStream: 'closed' };
  let eventSource = null;
  let reopenTimer = null;

  function open() {
    if (eventSource || !window.EventSource) return;
    clearTimeout(reopenTimer);
    // The service that serves this page; EventSource sends Last-Event-ID itself when it reconnects.
    const source = new EventSource(address(new URL('/live/events', location.href).href));
    eventSource = source;
    setEventStream('connecting');
    source.addEventListener('open', () => setEventStream('open'));
    source.addEventListener('error', () => {
      if (source.readyState !== EventSource.CLOSED) {
        setEventStream('connecting'); // the browser reconnects by itself after the server's retry
        return;
      }
      // Refused (503 when busy or restarting) or not an event stream: browsers give up; we do not.
      eventSource = null;
      setEventStream('closed');
      reopenTimer = setTimeout(() => {
        if (isOpen()) open();
      }, EVENTS_REOPEN_MS);
    });
    for (const type of ['segment', 'state', 'reset']) {
      source.addEventListener(type, (event) => onServerEvent(type, event.data));
    }
  }

  function close() {
    clearTimeout(reopenTimer);
    reopenTimer = null;
    if (eventSource) eventSource.close();
    eventSource = null;
    setEventStream('closed');
  }

  function setEventStream(state) {
    own.eventStream = state;
    status.textContent = state;
  }

  function onServerEvent(type, data) {
    let body = null;
    try {
      body = JSON.parse(data);
    } catch (err) {
      return; // not ours: ignore it rather than break the panel
    }
    if (body === null || typeof body !== 'object') return;
    own.events += 1;
    const item = document.createElement('li');
    item.dataset.type = type;
    const time = document.createElement('time');
    const now = new Date();
    time.dateTime = now.toISOString();
    time.textContent = now.toLocaleTimeString([], { hour12: false });
    const text = document.createElement('span');
    if (type === 'segment') {
      const duration = typeof body.duration === 'number' ? body.duration.toFixed(2) + ' s' : '?';
      text.textContent = 'variant ' + body.variant + ' · #' + body.media_sequence + ' · ' + duration;
      if (typeof body.url === 'string') item.title = body.url;
    } else if (type === 'state') {
      item.dataset.state = String(body.state);
      text.textContent = 'stream ' + body.state + (body.detail ? ' (' + body.detail + ')' : '');
    } else {
      text.textContent = 'missed some events; showing what the server kept';
    }
    item.append(time, text);
    list.prepend(item);
    while (list.children.length > EVENTS_SHOWN) list.lastElementChild.remove();
  }

  return { open, close, snapshot: () => frozen(own) };
}
