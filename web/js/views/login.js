// The login screen: log in, or create an account and log in with it.

import * as api from '../api.js';
import { byId } from '../dom.js';
import { t, onLocaleChange } from '../i18n.js';

let mode = 'login';
let onToken = () => {};
let mounted = false;
/** What the error line says, as a function: it is said again in the new
 * language when the language changes. */
let errorText = null;

function showError(text) {
  errorText = text;
  byId('login-error').textContent = text ? text() : '';
}

function setMode(next) {
  mode = next;
  const register = mode === 'register';
  byId('tab-login').setAttribute('aria-selected', String(!register));
  byId('tab-register').setAttribute('aria-selected', String(register));
  byId('name-field').hidden = !register;
  byId('invite-field').hidden = !register;
  byId('login-hint').hidden = !register;
  byId('login-password').autocomplete = register ? 'new-password' : 'current-password';
  labelSubmit();
  showError(null);
}

function labelSubmit() {
  byId('login-submit').textContent = mode === 'register' ? t('login.register') : t('login.logIn');
}

function mount() {
  mounted = true;
  byId('tab-login').addEventListener('click', () => setMode('login'));
  byId('tab-register').addEventListener('click', () => setMode('register'));
  onLocaleChange(() => {
    labelSubmit();
    showError(errorText);
  });
  byId('login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const account = byId('login-account').value.trim();
    const password = byId('login-password').value;
    const name = byId('login-name').value.trim();
    const invite = byId('login-invite').value.trim();
    const submit = byId('login-submit');
    if (account.length < 3) {
      showError(() => t('login.accountTooShort'));
      byId('login-account').focus();
      return;
    }
    if (mode === 'register' && password.length < 8) {
      showError(() => t('login.passwordTooShort'));
      byId('login-password').focus();
      return;
    }
    showError(null);
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
      showError(() => messageFor(err));
    } finally {
      submit.disabled = false;
    }
  });
}

function messageFor(err) {
  if (err.code === 0) return t('login.unreachable');
  if (err.code === 401) return t('login.wrongPassword');
  if (err.code === 409) return t('login.accountTaken');
  if (err.code === 429) return t('login.tooManyAttempts');
  // The server's own words, as it sends them, made a sentence.
  const text = err.message || t('login.somethingWrong');
  return text.charAt(0).toUpperCase() + text.slice(1) + (/[.!?。！？]$/.test(text) ? '' : '.');
}

/** The code of an invite link (`/?invite=CODE`), if the page was opened with one. */
function inviteFromUrl() {
  return new URLSearchParams(location.search).get('invite') || '';
}

function dropInviteFromUrl() {
  if (inviteFromUrl()) history.replaceState(history.state, '', location.pathname + location.hash);
}

/** Shows the login screen; `reason` (a function giving the text, or null)
 * explains why, e.g. an expired session. */
export function showLogin(reason, then) {
  if (!mounted) mount();
  onToken = then;
  // An invite link opens the form to create an account, code filled in.
  const invite = inviteFromUrl();
  setMode(invite ? 'register' : 'login');
  if (invite) byId('login-invite').value = invite;
  byId('login-view').hidden = false;
  showError(reason);
  byId('login-account').focus();
}

export function hideLogin() {
  byId('login-view').hidden = true;
}
