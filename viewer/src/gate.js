/* A private stream's door on the page: while the page has no valid token it shows the pass-phrase form
 * alone (index.html's #access; viewer.css hides everything else, the embed's video too) and nothing about
 * the stream: no title, no viewer count, no player. A wrong pass-phrase, an invite that expired or was
 * revoked: the service's own words above the form, which stays.
 *
 * create({ access }) (access.js) returns { ask, after, locked }:
 * - ask(message): shows the form (with `message`, '' for none); a promise resolved once the viewer got a
 *   token (the form is gone then). Asked again while shown, the same promise, the message updated;
 * - after(run): `run` now when the form is not shown, else once it is gone (what shows the stream's words);
 * - locked(): whether the form is shown. */

const LOCKED_TITLE = 'Private stream';

export function create({ access }) {
  const $ = (id) => document.getElementById(id);
  const root = document.documentElement;
  const section = $('access');
  const form = $('access-form');
  const input = $('passphrase');
  const button = $('access-submit');
  const error = $('access-error');
  let waiting = null; // { promise, resolve } while the form is shown
  let title = null; // the page's title while the form replaces it
  const queued = [];

  form.addEventListener('submit', async (event) => {
    event.preventDefault(); // the page's policy allows no form submission: this is the only path
    if (!waiting || button.disabled) return;
    button.disabled = true;
    say('');
    const result = await access.passphrase(input.value);
    button.disabled = false;
    if (result.ok) {
      input.value = '';
      open();
    } else {
      say(result.error || 'That did not work. Try again.');
      input.select();
    }
  });

  function ask(message) {
    say(message);
    if (waiting) return waiting.promise;
    let resolve;
    const promise = new Promise((r) => { resolve = r; });
    waiting = { promise, resolve };
    title = document.title;
    document.title = LOCKED_TITLE;
    root.dataset.access = 'needed';
    section.hidden = false;
    input.focus();
    return promise;
  }

  function open() {
    const done = waiting;
    waiting = null;
    section.hidden = true;
    delete root.dataset.access;
    if (title !== null) document.title = title;
    title = null;
    done.resolve();
    while (queued.length && !waiting) queued.shift()();
  }

  function say(text) {
    error.textContent = text;
    error.hidden = !text;
  }

  function after(run) {
    if (waiting) queued.push(run);
    else run();
  }

  return { ask, after, locked: () => waiting !== null };
}
