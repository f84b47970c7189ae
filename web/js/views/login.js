// The login screen: log in, or create an account and log in with it.

import * as api from '../api.js';
import { byId } from '../dom.js';

let mode = 'login';
let onToken = () => {};
let mounted = false;

function setMode(next) {
  mode = next;
  const register = mode === 'register';
  byId('tab-login').setAttribute('aria-selected', String(!register));
  byId('tab-register').setAttribute('aria-selected', String(register));
  byId('name-field').hidden = !register;
  byId('invite-field').hidden = !register;
  byId('login-hint').hidden = !register;
  byId('login-password').autocomplete = register ? 'new-password' : 'current-password';
  byId('login-submit').textContent = register ? 'Create account' : 'Log in';
  byId('login-error').textContent = '';
}

function mount() {
  mounted = true;
  byId('tab-login').addEventListener('click', () => setMode('login'));
  byId('tab-register').addEventListener('click', () => setMode('register'));
  byId('login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const account = byId('login-account').value.trim();
    const password = byId('login-password').value;
    const name = byId('login-name').value.trim();
    const invite = byId('login-invite').value.trim();
    const error = byId('login-error');
    const submit = byId('login-submit');
    if (account.length < 3) {
      error.textContent = 'Enter your account (at least 3 characters).';
      byId('login-account').focus();
      return;
    }
    if (mode === 'register' && password.length < 8) {
      error.textContent = 'Choose a password of at least 8 characters.';
      byId('login-password').focus();
      return;
    }
    error.textContent = '';
    submit.disabled = true;
    try {
      if (mode === 'register') await api.register(account, password, name, invite);
      const token = await api.login(account, password);
      api.setToken(token);
      byId('login-password').value = '';
      byId('login-invite').value = '';
      dropInviteFromUrl();
      onToken(token);
    } catch (err) {
      error.textContent = messageFor(err);
    } finally {
      submit.disabled = false;
    }
  });
}

function messageFor(err) {
  if (err.code === 0) return 'Cannot reach the server. Check your connection and try again.';
  if (err.code === 401) return 'Wrong account or password.';
  if (err.code === 409) return 'That account name is taken. Try another one.';
  if (err.code === 429) return 'Too many attempts. Wait a minute and try again.';
  const text = err.message || 'Something went wrong.';
  return text.charAt(0).toUpperCase() + text.slice(1) + (/[.!?]$/.test(text) ? '' : '.');
}

/** The code of an invite link (`/?invite=CODE`), if the page was opened with one. */
function inviteFromUrl() {
  return new URLSearchParams(location.search).get('invite') || '';
}

function dropInviteFromUrl() {
  if (inviteFromUrl()) history.replaceState(history.state, '', location.pathname + location.hash);
}

/** Shows the login screen; `reason` explains why (e.g. an expired session). */
export function showLogin(reason, then) {
  if (!mounted) mount();
  onToken = then;
  // An invite link opens the form to create an account, code filled in.
  const invite = inviteFromUrl();
  setMode(invite ? 'register' : 'login');
  if (invite) byId('login-invite').value = invite;
  byId('login-view').hidden = false;
  byId('login-error').textContent = reason || '';
  byId('login-account').focus();
}

export function hideLogin() {
  byId('login-view').hidden = true;
}
