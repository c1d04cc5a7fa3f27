// refcam web UI: a single page over the device's JSON API (/api/v1/...).
//
// Security rules this file keeps (the server's CSP enforces the first two):
// * no inline code or style, nothing from another origin;
// * data from the device goes into the page only through textContent / DOM
//   nodes, never innerHTML, so a user name like "<script>" shows as text;
// * the session lives in the HttpOnly cookie; the CSRF token is kept in memory
//   only (never localStorage, never a URL) and sent as X-CSRF-Token on every
//   state-changing request. After a reload it is fetched again from
//   GET /api/v1/session.
//
// Views are <section id="view-NAME"> elements in index.html, chosen by the URL
// fragment (#/dashboard, #/users, ...). Extension hooks: #view-live (stream)
// and #view-update (update panel with <progress id="update-progress">).
"use strict";

(() => {
  const API = "/api/v1";
  const ROLE_RANK = { viewer: 1, operator: 2, admin: 3 };
  const VIEWS = ["loading", "login", "change-password", "dashboard", "live", "update", "users", "audit", "settings"];
  const MAIN_VIEWS = ["dashboard", "live", "update", "users", "audit", "settings"];
  const ADMIN_VIEWS = new Set(["update", "users", "audit", "settings"]);
  const AUDIT_PAGE_SIZE = 50;
  const UPDATE_POLL_MS = 1000;
  const AUDIT_FILTER_MAX = 500; // matching entries shown when a filter is on

  // Audit event names in words (device/api.py, device/server.py, device/main.py,
  // device/update/web.py). An unknown name is shown as it is.
  const EVENT_TEXT = {
    boot: N_("Camera started"),
    boot_notice: N_("Boot notice"),
    login_success: N_("Logged in"),
    login_failure: N_("Failed login"),
    lockout: N_("Account locked out"),
    logout: N_("Logged out"),
    password_change: N_("Password changed"),
    user_create: N_("User created"),
    user_role: N_("User role changed"),
    user_delete: N_("User deleted"),
    user_password_reset: N_("User password reset"),
    config_change: N_("Settings changed"),
    update_check: N_("Checked for updates"),
    update_install: N_("Update installed (from the update server)"),
    update_upload: N_("Update installed (uploaded image)"),
    update_confirmed: N_("Update confirmed after a healthy trial"),
    update_trial_failed: N_("Update failed its trial; reverting"),
    update_check_refused: N_("Update check refused"),
    update_install_refused: N_("Update install refused"),
    update_upload_refused: N_("Uploaded image refused"),
  };
  // Detail field names in words; others are shown as they are.
  const FIELD_TEXT = {
    failures: N_("Failed attempts"),
    route: N_("Where"),
    seconds: N_("Locked for (s)"),
    password_change_required: N_("Must change password"),
    forced: N_("Forced change"),
    sessions_ended: N_("Other sessions ended"),
    username: N_("User"),
    role: N_("Role"),
    slot: N_("Slot"),
    version: N_("Version"),
    trial: N_("Trial boot"),
    measurement_register: N_("Measurement register"),
    notice: N_("Notice"),
    available: N_("Newer version"),
    error: N_("Error"),
    message: N_("Message"),
    security_counter: N_("Security counter"),
    password_policy: N_("Password policy"),
    update_url: N_("Update source"),
  };

  // Password policy profiles the device can be configured with (device/config.py).
  const POLICY_RULES = {
    "nist-800-63b": [
      N_("At least 15 characters (NIST SP 800-63B); spaces and any characters are allowed, no composition rules."),
      N_("Not a commonly used password and not a known default such as admin/admin."),
      N_("Not your user name and not the initial password from the label."),
    ],
    "kr-terminal": [
      N_("At least 8 characters from 3 of: lower-case letters, upper-case letters, digits, symbols;"),
      N_("or at least 10 characters from 2 of them."),
      N_("Not a commonly used password and not a known default such as admin/admin."),
      N_("Not your user name and not the initial password from the label."),
    ],
  };

  const state = {
    user: null, // {username, role, must_change}
    csrf: null, // CSRF token, memory only
    audit: null, // current audit page {after, limit, head}
    updateTimer: null,
    restarting: false, // an update was installed: connection errors are the reboot
    updateData: null, // the last update status document
    installs: [], // install history from the audit log
    settings: null, // GET /settings as loaded
    policy: null,
  };

  // ---- languages (device/i18n.py) ------------------------------------------
  //
  // English is the source: every string a person reads is written in English,
  // here through _() / ngettext() / N_() and in index.html as text and as the
  // placeholder, alt, aria-label and title attributes. Babel extracts them
  // (scripts/i18n.py); GET /api/v1/i18n gives the catalogue of the language the
  // browser asks for (Accept-Language) or the one named; an account's choice
  // (PUT /api/v1/session/language) wins once logged in. Codes, identifiers and
  // data from the device are never translated.

  const i18n = { language: "en", loaded: false, messages: {}, languages: { en: "English", ko: "\ud55c\uad6d\uc5b4" } };

  function format(text, params) {
    if (!params) return text;
    return text.replace(/\{(\w+)\}/g, (whole, key) => (Object.hasOwn(params, key) ? String(params[key]) : whole));
  }

  function _(text, params) {
    const translated = i18n.messages[text];
    return format(typeof translated === "string" && translated ? translated : text, params);
  }

  // Korean has one form; English picks by n. The catalogue holds [singular, plural] forms.
  function ngettext(singular, plural, n, params) {
    const forms = i18n.messages[singular];
    if (Array.isArray(forms) && forms.length) return format(forms[Math.min(forms.length - 1, n === 1 ? 0 : 1)], params);
    return format(n === 1 ? singular : plural, params);
  }

  // Marks a string for extraction where it is translated later (tables of names).
  function N_(text) {
    return text;
  }

  const ROLE_TEXT = { viewer: N_("viewer"), operator: N_("operator"), admin: N_("admin") };
  // The steps of an install (renderPhases); data-step keeps the English name.
  const STEP_TEXT = [N_("Download"), N_("Verify and install"), N_("Restart"), N_("Trial"), N_("Confirmed"), N_("Reverted")];

  function roleText(role) {
    return ROLE_TEXT[role] ? _(ROLE_TEXT[role]) : display(role);
  }

  // The page's own text, as index.html has it (English), so it can be translated again.
  const PAGE_TEXT = [];
  const PAGE_ATTRIBUTES = ["placeholder", "alt", "aria-label", "title"];
  const collapse = (text) => text.replace(/\s+/g, " ").trim();
  const hasLetter = (text) => /\p{L}/u.test(text);

  function collectPageText() {
    const skip = (node) => node.closest('[translate="no"], script, style');
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const source = collapse(node.nodeValue);
      if (!hasLetter(source) || skip(node.parentElement)) continue;
      const [lead] = node.nodeValue.match(/^\s*/);
      const [trail] = node.nodeValue.match(/\s*$/);
      PAGE_TEXT.push({ node, source, lead, trail });
    }
    for (const element of document.body.querySelectorAll("*")) {
      if (skip(element)) continue;
      for (const attribute of PAGE_ATTRIBUTES) {
        const value = element.getAttribute(attribute);
        if (value && hasLetter(value)) PAGE_TEXT.push({ element, attribute, source: collapse(value) });
      }
    }
    PAGE_TEXT.push({ title: true, source: collapse(document.title) });
  }

  function translatePage() {
    document.documentElement.lang = i18n.language;
    for (const item of PAGE_TEXT) {
      const text = _(item.source);
      if (item.title) document.title = text;
      else if (item.node) item.node.nodeValue = item.lead + text + item.trail;
      else item.element.setAttribute(item.attribute, text);
    }
    const choice = $("lang-switch");
    if (choice.value !== i18n.language) choice.value = i18n.language;
    if (state.user) $("whoami").textContent = `${state.user.username} (${roleText(state.user.role)})`;
  }

  async function loadLanguage(language) {
    const query = language ? `?lang=${encodeURIComponent(language)}` : "";
    try {
      const data = await api("GET", `/i18n${query}`);
      i18n.language = data.language;
      i18n.messages = data.messages || {};
      if (data.languages) i18n.languages = data.languages;
      i18n.loaded = true;
    } catch {
      i18n.language = "en"; // the English source text is always there
      i18n.messages = {};
    }
    translatePage();
  }

  // The account's language wins once logged in; before that the browser's.
  async function followAccountLanguage() {
    try {
      const data = await api("GET", "/session/language");
      if (data && data.language && data.language !== i18n.language) {
        await loadLanguage(data.language);
        return true;
      }
    } catch {
      // no choice stored, or not allowed yet: keep the browser's language
    }
    return false;
  }

  async function onLanguageSwitch() {
    const language = $("lang-switch").value;
    await loadLanguage(language);
    if (state.user && !state.user.must_change) {
      try {
        await api("PUT", "/session/language", { language });
      } catch (err) {
        if (!handleCommonError(err)) banner(errorText(err));
      }
    }
    if (state.user) route(location.hash); // views built by code are drawn again in the new language
  }

  // ---- DOM helpers (no innerHTML anywhere) --------------------------------

  const $ = (id) => {
    const node = document.getElementById(id);
    if (node === null) throw new Error(`index.html has no #${id}`);
    return node;
  };

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function show(node, visible) {
    node.hidden = !visible;
  }

  function fillList(dl, rows) {
    dl.replaceChildren();
    for (const [label, value, cls] of rows) {
      if (value === undefined) continue;
      dl.append(el("dt", label), el("dd", display(value), cls));
    }
  }

  function display(value) {
    if (value === null || value === undefined || value === "") return "\u2014";
    if (typeof value === "boolean") return value ? _("yes") : _("no");
    if (typeof value === "object") return JSON.stringify(value);
    return String(value);
  }

  function formatTime(value) {
    if (typeof value === "number") {
      return new Date(value * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, "");
    }
    return display(value);
  }

  // A message above the current view; kind "ok" for a success, else an error.
  // kind "info" for a neutral note.
  function banner(message, kind) {
    const node = $("banner");
    node.textContent = message || "";
    node.className = kind === "ok" ? "banner ok" : kind === "info" ? "notice" : "banner";
    node.setAttribute("role", kind === "ok" || kind === "info" ? "status" : "alert");
    show(node, Boolean(message));
  }

  // First present value among dotted paths ("fuses.lifecycle"), else undefined.
  function pick(obj, ...paths) {
    for (const path of paths) {
      let cur = obj;
      for (const key of path.split(".")) {
        cur = cur !== null && typeof cur === "object" ? cur[key] : undefined;
      }
      if (cur !== undefined) return cur;
    }
    return undefined;
  }

  // ---- API ----------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, body) {
      const code = body && typeof body.error === "string" ? body.error : `http_${status}`;
      const message = body && typeof body.message === "string" ? body.message : `HTTP ${status}`;
      super(message);
      this.status = status;
      this.code = code;
      this.body = body || {};
    }
  }

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    const init = { method, headers, credentials: "same-origin", cache: "no-store", redirect: "error" };
    if (body instanceof Blob) {
      headers["Content-Type"] = "application/octet-stream"; // a firmware image
      init.body = body;
    } else if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    if (method !== "GET" && method !== "HEAD" && state.csrf) headers["X-CSRF-Token"] = state.csrf;
    if (i18n.loaded) headers["Accept-Language"] = i18n.language; // the device's messages in the UI's language
    const response = await fetch(API + path, init);
    let data = null;
    if ((response.headers.get("Content-Type") || "").includes("application/json")) {
      data = await response.json().catch(() => null);
    }
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }

  // Errors every view treats the same: the session ended, or a password change is due.
  function handleCommonError(err) {
    if (!(err instanceof ApiError)) {
      banner(_("The device did not answer: {error}", { error: err.message }));
      return true;
    }
    if (err.status === 401) {
      endSession(_("Your session has ended. Please log in again."));
      return true;
    }
    if (err.code === "password_change_required") {
      if (state.user) state.user.must_change = true;
      route("change-password");
      return true;
    }
    if (err.code === "csrf") {
      endSession(_("This page lost its session token. Please log in again."));
      return true;
    }
    return false;
  }

  function errorText(err) {
    if (err instanceof ApiError) {
      if (err.code === "forbidden") return _("Not allowed: {reason}", { reason: err.message });
      return err.message;
    }
    return _("The device did not answer: {error}", { error: err.message });
  }

  // ---- session ------------------------------------------------------------

  function setSession(data, username) {
    state.user = {
      username: pick(data, "username", "user", "name") ?? username ?? "",
      role: pick(data, "role") ?? "viewer",
      must_change: Boolean(pick(data, "password_change_required", "must_change")),
    };
    const csrf = pick(data, "csrf_token");
    if (typeof csrf === "string" && csrf) state.csrf = csrf;
    const policy = pick(data, "password_policy", "policy");
    if (typeof policy === "string") state.policy = policy;
    $("pw-username").value = state.user.username;
    const who = $("whoami");
    who.textContent = `${state.user.username} (${roleText(state.user.role)})`;
    show(who, true);
    const rank = ROLE_RANK[state.user.role] || 0;
    for (const link of document.querySelectorAll("#nav [data-min-role]")) {
      show(link, rank >= (ROLE_RANK[link.dataset.minRole] || 99));
    }
  }

  // A note on the login view: neutral ("You are logged out.") unless kind is "error".
  function loginMessage(message, kind) {
    const notice = $("login-notice");
    const error = $("login-error");
    notice.textContent = kind === "error" ? "" : message || "";
    error.textContent = kind === "error" ? message || "" : "";
    show(notice, Boolean(message) && kind !== "error");
    show(error, Boolean(message) && kind === "error");
  }

  function endSession(message) {
    state.user = null;
    state.csrf = null;
    show($("nav"), false);
    show($("whoami"), false);
    stopUpdatePolling();
    stopLive();
    showView("login");
    loginMessage(message);
    if (location.hash !== "" && location.hash !== "#/login") history.replaceState(null, "", "#/login");
  }

  async function start() {
    collectPageText();
    await loadLanguage(null);
    loadDeviceName();
    try {
      const data = await api("GET", "/session");
      if (!state.csrf && typeof pick(data, "csrf_token") !== "string") {
        // The CSRF token lived only in the memory of the page before this
        // reload, and this device does not hand it out again: without it
        // nothing can be changed (not even logging out), so log in afresh.
        $("login-username").value = pick(data, "username") ?? "admin";
        endSession(_("The page was reloaded. Log in again to continue."));
        return;
      }
      setSession(data);
      await followAccountLanguage();
      route(location.hash);
    } catch (err) {
      if (err instanceof ApiError && (err.status === 401 || err.status === 404)) {
        endSession("");
      } else if (!handleCommonError(err)) {
        banner(errorText(err));
      }
    }
  }

  async function loadDeviceName() {
    try {
      const info = await api("GET", "/info");
      const model = pick(info, "model", "device.model", "identity.model");
      const serial = pick(info, "serial", "device.serial", "identity.serial");
      $("device-name").textContent = [model, serial].filter(Boolean).join(" \u00b7 ");
      const policy = pick(info, "password_policy");
      if (typeof policy === "string" && !state.policy) state.policy = policy;
      showFlaws(pick(info, "unsafe_flaws"));
    } catch {
      // The header is decoration; the dashboard reports errors.
    }
  }

  // Flaw profiles (common/flaws.py) make a deliberately weakened device: say so on every page.
  function showFlaws(flaws) {
    const node = $("flaw-banner");
    const names = Array.isArray(flaws) ? flaws.map(String) : [];
    node.textContent = names.length
      ? ngettext(
        "UNSAFE test device: flaw profile {names} is switched on. This camera is deliberately weakened; use it only for testing.",
        "UNSAFE test device: flaw profiles {names} are switched on. This camera is deliberately weakened; use it only for testing.",
        names.length, { names: names.join(", ") })
      : "";
    show(node, names.length > 0);
  }

  // data-label on every cell from its column heading: the phone layout shows it.
  function labelCells(table) {
    const heads = Array.from(table.tHead ? table.tHead.rows[0].cells : []).map((th) => th.textContent);
    for (const row of table.tBodies[0].rows) {
      Array.from(row.cells).forEach((cell, i) => {
        if (heads[i]) cell.dataset.label = heads[i];
      });
    }
  }

  async function onLogin(event) {
    event.preventDefault();
    const username = $("login-username").value;
    const password = $("login-password").value;
    loginMessage("");
    try {
      const data = await api("POST", "/session", { username, password });
      $("login-password").value = "";
      setSession(data, username);
      await followAccountLanguage();
      loadDeviceName(); // serial number and firmware are shown once logged in
      // The bearer token in the body is for API clients; the browser uses the cookie.
      route(state.user.must_change ? "change-password" : location.hash);
    } catch (err) {
      if (err instanceof ApiError && err.code === "throttled") {
        const wait = Number(err.body.retry_after);
        loginMessage(Number.isFinite(wait)
          ? _("Too many failed logins. Try again in {seconds} seconds.", { seconds: wait })
          : _("Too many failed logins. Try again in a few seconds."), "error");
      } else if (err instanceof ApiError && err.code === "invalid_credentials") {
        loginMessage(_("Wrong user name or password."), "error");
      } else {
        loginMessage(errorText(err), "error");
      }
    }
  }

  async function onLogout() {
    try {
      await api("DELETE", "/session");
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 401)) banner(errorText(err));
    }
    endSession(_("You are logged out."));
  }

  // ---- forced password change ---------------------------------------------

  function renderPolicy() {
    const list = $("policy-rules");
    list.replaceChildren();
    const known = state.policy && POLICY_RULES[state.policy];
    if (known) {
      $("policy-intro").textContent = _("The device checks a new password against its \"{policy}\" policy:", { policy: state.policy });
      for (const rule of known) list.append(el("li", _(rule)));
      return;
    }
    $("policy-intro").textContent = _("The device checks a new password against its selected policy profile:");
    for (const [name, rules] of Object.entries(POLICY_RULES)) {
      const item = el("li", `${name}: `);
      item.append(rules.map((rule) => _(rule)).join(" "));
      list.append(item);
    }
  }

  async function onChangePassword(event) {
    event.preventDefault();
    const current = $("pw-current").value;
    const next = $("pw-new").value;
    const box = $("password-rejected");
    const reasons = $("password-reasons");
    reasons.replaceChildren();
    show(box, false);
    if (next !== $("pw-confirm").value) {
      $("password-error").textContent = _("The two new passwords differ.");
      show(box, true);
      return;
    }
    try {
      await api("POST", "/session/password", { current_password: current, new_password: next });
    } catch (err) {
      if (err instanceof ApiError && err.code === "password_policy") {
        $("password-error").textContent = _("The device rejected this password:");
        // The server's reasons, verbatim.
        for (const reason of err.body.reasons || []) reasons.append(el("li", reason));
      } else if (err instanceof ApiError && err.status === 401) {
        endSession(_("Your session has ended. Please log in again."));
        return;
      } else {
        $("password-error").textContent = errorText(err);
      }
      show(box, true);
      box.scrollIntoView({ block: "nearest" });
      return;
    }
    for (const id of ["pw-current", "pw-new", "pw-confirm"]) $(id).value = "";
    try {
      setSession(await api("GET", "/session"));
      state.user.must_change = false;
      route("dashboard");
      banner(_("Password changed. Use the new password from now on."), "ok");
    } catch {
      endSession(_("Password changed. Log in with your new password."));
    }
  }

  // ---- dashboard ----------------------------------------------------------

  function stateClass(value) {
    if (value === "valid" || value === true || value === "secured" || value === "ok") return "state-ok";
    if (value === "invalid" || value === false || value === "failed") return "state-bad";
    if (value === "empty") return "muted";
    return "state-warn";
  }

  async function loadDashboard() {
    const error = $("dash-error");
    show(error, false);
    let info;
    let status;
    try {
      [info, status] = await Promise.all([api("GET", "/info"), api("GET", "/status")]);
    } catch (err) {
      if (!handleCommonError(err)) {
        error.textContent = errorText(err);
        show(error, true);
      }
      return;
    }
    fillList($("dash-device"), [
      [_("Vendor"), pick(info, "vendor", "identity.vendor", "device.vendor")],
      [_("Model"), pick(info, "model", "identity.model", "device.model")],
      [_("Serial number"), pick(info, "serial", "identity.serial", "device.serial")],
      [_("Hardware ID"), pick(info, "hardware_id", "identity.hardware_id", "device.hardware_id")],
      [_("Support ends"), pick(info, "support_end", "firmware.support_end")],
    ]);
    const trial = pick(status, "trial", "boot.trial");
    fillList($("dash-firmware"), [
      [_("Firmware version"), pick(status, "firmware_version", "firmware.version", "version") ?? pick(info, "firmware_version", "firmware.version")],
      [_("Booted slot"), pick(status, "booted_slot", "boot.booted_slot", "slot")],
      [_("Security counter"), pick(status, "security_counter", "boot.security_counter")],
      [_("Trial boot"), trial === undefined ? undefined : trial ? _("yes (not yet confirmed)") : _("no (confirmed)"), trial ? "state-warn" : "state-ok"],
      [_("Measurement register"), pick(status, "measurement_register", "boot.measurement_register"), "mono"],
    ]);
    const fuses = pick(status, "fuses") || {};
    const lifecycle = pick(status, "lifecycle", "fuses.lifecycle");
    const debugOff = pick(status, "debug_disabled", "fuses.debug_disabled");
    const security = [
      [_("Lifecycle"), lifecycle, stateClass(lifecycle)],
      [_("Debug port"), debugOff === undefined ? undefined : debugOff ? _("disabled") : _("enabled"), stateClass(debugOff)],
      [_("TLS profile"), pick(status, "tls_profile", "security.tls_profile") ?? pick(info, "tls_profile")],
      [_("Password policy"), pick(status, "password_policy", "security.password_policy") ?? pick(info, "password_policy")],
    ];
    const notices = pick(status, "notices", "boot.notices");
    if (Array.isArray(notices)) {
      security.push([_("Boot notices"), notices.length ? notices.join("; ") : _("none"), notices.length ? "state-warn" : "state-ok"]);
    }
    const measurements = pick(status, "measurements");
    if (Array.isArray(measurements)) {
      security.push([_("Measured boot"), _("{count} stages: {stages}", { count: measurements.length, stages: measurements.map((m) => pick(m, "stage")).join(", ") })]);
    }
    const rotKeys = pick(status, "rot_keys", "fuses.rot_keys");
    if (Array.isArray(rotKeys)) {
      const revoked = rotKeys.filter((k) => (Array.isArray(k) ? k[1] : k && k.revoked)).length;
      security.push([_("Root-of-trust keys"), _("{fused} fused, {revoked} revoked", { fused: rotKeys.length, revoked })]);
    }
    fillList($("dash-security"), security);

    const body = $("dash-slots").tBodies[0];
    body.replaceChildren();
    const slots = pick(status, "slots", "boot.slots") || [];
    const booted = pick(status, "booted_slot", "boot.booted_slot");
    for (const slot of Array.isArray(slots) ? slots : Object.entries(slots).map(([k, v]) => ({ slot: k, ...v }))) {
      const row = el("tr");
      const name = pick(slot, "slot", "name");
      row.append(
        el("td", name === booted ? _("{slot} (booted)", { slot: display(name) }) : display(name)),
        el("td", display(pick(slot, "state")), stateClass(pick(slot, "state"))),
        el("td", display(pick(slot, "version"))),
        el("td", display(pick(slot, "security_counter"))),
        el("td", display(pick(slot, "reason"))),
      );
      body.append(row);
    }
    labelCells($("dash-slots"));
    const counters = [];
    for (const [key, label] of [
      ["firmware_counter", N_("Firmware")],
      ["bootloader_counter", N_("Bootloader")],
      ["key_manifest_counter", N_("Key manifest")],
    ]) {
      counters.push([_(label), pick(fuses, key) ?? pick(status, key)]);
    }
    fillList($("dash-fuses"), counters);
  }

  // ---- users (admin) --------------------------------------------------------

  function usersError(err) {
    const box = $("users-error");
    const reasons = $("users-error-reasons");
    reasons.replaceChildren();
    if (!err) {
      show(box, false);
      return;
    }
    $("users-error-text").textContent = errorText(err);
    if (err instanceof ApiError && Array.isArray(err.body.reasons)) {
      for (const reason of err.body.reasons) reasons.append(el("li", reason));
    }
    show(box, true);
  }

  async function loadUsers() {
    usersError(null);
    let data;
    try {
      data = await api("GET", "/users");
    } catch (err) {
      if (!handleCommonError(err)) usersError(err);
      return;
    }
    const users = Array.isArray(data) ? data : data.users || [];
    const body = $("users-table").tBodies[0];
    body.replaceChildren();
    for (const user of users) {
      const name = pick(user, "username", "name");
      const row = el("tr");
      row.dataset.username = name;
      const remove = el("button", _("Delete"), "danger");
      remove.type = "button";
      remove.disabled = state.user && name === state.user.username;
      remove.title = remove.disabled ? _("You cannot delete yourself") : _("Delete {user}", { user: name });
      remove.addEventListener("click", () => deleteUser(name));
      const cell = el("td");
      cell.append(remove);
      row.append(
        el("td", name),
        el("td", roleText(pick(user, "role"))),
        el("td", display(pick(user, "must_change", "password_change_required"))),
        cell,
      );
      body.append(row);
    }
    labelCells($("users-table"));
  }

  async function onAddUser(event) {
    event.preventDefault();
    usersError(null);
    const body = {
      username: $("user-name").value,
      password: $("user-password").value,
      role: $("user-role").value,
    };
    try {
      await api("POST", "/users", body);
    } catch (err) {
      if (!handleCommonError(err)) usersError(err);
      return;
    }
    $("user-name").value = "";
    $("user-password").value = "";
    await loadUsers();
  }

  async function deleteUser(name) {
    if (!window.confirm(_("Delete the user \"{user}\"?", { user: name }))) return;
    usersError(null);
    try {
      await api("DELETE", `/users/${encodeURIComponent(name)}`);
    } catch (err) {
      if (!handleCommonError(err)) usersError(err);
      return;
    }
    await loadUsers();
  }

  // ---- audit log (admin), newest first, paginated ---------------------------
  //
  // GET /api/v1/audit?after=SEQ&limit=N returns entries with seq > SEQ, oldest
  // first, and the chain head {seq, hash}. A page here is (after, limit); the
  // first page is the newest one, so the head is read first.

  async function fetchAudit(after, limit) {
    const params = new URLSearchParams({ after: String(after), limit: String(limit) });
    return api("GET", `/audit?${params}`);
  }

  // The whole log, oldest first (GET /api/v1/audit/export, JSON lines).
  async function fetchAuditAll() {
    const response = await fetch(`${API}/audit/export`, {
      credentials: "same-origin", cache: "no-store", redirect: "error", headers: { Accept: "application/x-ndjson" },
    });
    if (!response.ok) {
      const body = await response.json().catch(() => null);
      throw new ApiError(response.status, body);
    }
    const text = await response.text();
    return text.split("\n").filter((line) => line.trim() !== "").map((line) => JSON.parse(line));
  }

  function eventText(name) {
    return EVENT_TEXT[name] ? _(EVENT_TEXT[name]) : String(name);
  }

  function fieldText(name) {
    return FIELD_TEXT[name] ? _(FIELD_TEXT[name]) : String(name).replace(/_/g, " ");
  }

  // Details as fields: one dt/dd per key; a change [old, new] reads "old → new".
  function detailFields(details) {
    if (details === null || details === undefined) return el("span", "\u2014", "muted");
    if (typeof details !== "object") return el("span", display(details));
    const keys = Object.keys(details);
    if (keys.length === 0) return el("span", "\u2014", "muted");
    const dl = el("dl", null, "fields");
    for (const key of keys) {
      const value = details[key];
      const shown = Array.isArray(value) && value.length === 2 && !Array.isArray(value[0])
        ? `${display(value[0])} \u2192 ${display(value[1])}`
        : display(value);
      dl.append(el("dt", fieldText(key)), el("dd", shown));
    }
    return dl;
  }

  function renderAuditRows(entries) {
    const body = $("audit-table").tBodies[0];
    body.replaceChildren();
    for (const entry of entries) {
      const row = el("tr");
      const name = pick(entry, "event");
      row.dataset.event = display(name);
      const eventCell = el("td", eventText(name));
      eventCell.title = display(name);
      const detailCell = el("td", null, "details");
      detailCell.append(detailFields(pick(entry, "detail", "details")));
      row.append(
        el("td", display(pick(entry, "seq"))),
        el("td", formatTime(pick(entry, "time"))),
        eventCell,
        el("td", display(pick(entry, "actor", "user", "username"))),
        el("td", display(pick(entry, "source"))),
        detailCell,
      );
      body.append(row);
    }
    labelCells($("audit-table"));
  }

  function fillEventChoices(seen) {
    const select = $("audit-event");
    const chosen = select.value;
    const names = new Set([...Object.keys(EVENT_TEXT), ...seen]);
    const options = [...names].sort((a, b) => eventText(a).localeCompare(eventText(b)));
    select.replaceChildren(el("option", _("All events")));
    select.options[0].value = "";
    for (const name of options) {
      const option = el("option", eventText(name));
      option.value = name;
      select.append(option);
    }
    select.value = chosen;
  }

  function auditFilter() {
    return { event: $("audit-event").value, user: $("audit-user").value.trim() };
  }

  async function loadAudit(direction) {
    const error = $("audit-error");
    show(error, false);
    const filter = auditFilter();
    if (filter.event || filter.user) {
      await loadAuditFiltered(filter);
      return;
    }
    let data;
    try {
      let page = state.audit;
      if (direction === "newest" || page === null) {
        const head = Number(pick(await fetchAudit(0, 1), "head.seq")) || 0;
        const after = Math.max(0, head - AUDIT_PAGE_SIZE);
        page = { after, limit: Math.max(1, head - after), head };
      } else if (direction === "older") {
        const after = Math.max(0, page.after - AUDIT_PAGE_SIZE);
        page = { after, limit: Math.max(1, page.after - after), head: page.head };
      } else if (direction === "newer") {
        const after = page.after + page.limit;
        page = { after, limit: Math.max(1, Math.min(AUDIT_PAGE_SIZE, page.head - after)), head: page.head };
      }
      data = await fetchAudit(page.after, page.limit);
      page.head = Number(pick(data, "head.seq")) || page.head;
      state.audit = page;
    } catch (err) {
      if (!handleCommonError(err)) {
        error.textContent = errorText(err);
        show(error, true);
      }
      return;
    }
    const entries = (Array.isArray(data) ? data : data.entries || []).slice().reverse();
    fillEventChoices(entries.map((e) => pick(e, "event")));
    renderAuditRows(entries);
    const page = state.audit;
    show($("audit-older"), true);
    show($("audit-newer"), true);
    $("audit-older").disabled = page.after === 0;
    $("audit-newer").disabled = page.after + page.limit >= page.head;
    const first = entries.length ? pick(entries[entries.length - 1], "seq") : "\u2014";
    const last = entries.length ? pick(entries[0], "seq") : "\u2014";
    $("audit-page").textContent = _("Entries {first}\u2013{last} of {total}", { first, last, total: page.head });
    $("audit-summary").textContent = "";
  }

  // A filter searches the whole log (the API pages by sequence number only).
  async function loadAuditFiltered(filter) {
    const error = $("audit-error");
    let all;
    try {
      all = await fetchAuditAll();
    } catch (err) {
      if (!handleCommonError(err)) {
        error.textContent = errorText(err);
        show(error, true);
      }
      return;
    }
    fillEventChoices(all.map((e) => pick(e, "event")));
    const user = filter.user.toLowerCase();
    const matching = all
      .filter((e) => !filter.event || pick(e, "event") === filter.event)
      .filter((e) => !user || String(pick(e, "actor") ?? "").toLowerCase().includes(user)
        || String(pick(e, "detail.username") ?? "").toLowerCase().includes(user))
      .reverse();
    renderAuditRows(matching.slice(0, AUDIT_FILTER_MAX));
    const parts = [];
    if (filter.event) parts.push(_("event \u201c{event}\u201d", { event: eventText(filter.event) }));
    if (filter.user) parts.push(_("user \u201c{user}\u201d", { user: filter.user }));
    const summary = parts.length === 2
      ? _("{matching} of {total} entries match {first} and {second}.", { matching: matching.length, total: all.length, first: parts[0], second: parts[1] })
      : _("{matching} of {total} entries match {filter}.", { matching: matching.length, total: all.length, filter: parts[0] });
    const more = matching.length > AUDIT_FILTER_MAX ? " " + _("(the newest {count} shown)", { count: AUDIT_FILTER_MAX }) : "";
    $("audit-summary").textContent = summary + more;
    show($("audit-older"), false);
    show($("audit-newer"), false);
    $("audit-page").textContent = "";
  }

  function onAuditFilter(event) {
    event.preventDefault();
    state.audit = null;
    loadAudit("newest");
  }

  function onAuditClear() {
    $("audit-event").value = "";
    $("audit-user").value = "";
    state.audit = null;
    loadAudit("newest");
  }

  function setExportName() {
    const serial = ($("device-name").textContent.split(" \u00b7 ")[1] || "camera").replace(/[^A-Za-z0-9._-]/g, "_");
    $("audit-export").setAttribute("download", `audit-${serial}.jsonl`);
  }

  // ---- live view hook: GET /api/v1/stream.mjpeg ------------------------------

  async function loadLive() {
    const status = $("live-status");
    const image = $("live-image");
    status.textContent = _("Connecting\u2026");
    // Ask once with fetch so a missing route shows a message, then let the
    // <img> element hold the multipart stream (same origin, cookie session).
    const probe = new AbortController();
    let response;
    try {
      response = await fetch(`${API}/stream.mjpeg`, { credentials: "same-origin", signal: probe.signal, cache: "no-store" });
    } catch (err) {
      status.textContent = _("The live view is not available: {reason}", { reason: err.message });
      return;
    }
    probe.abort();
    if (response.status === 404) {
      status.textContent = _("The live view is not available on this firmware.");
      return;
    }
    if (!response.ok) {
      let body = null;
      try {
        body = await response.clone().json();
      } catch {
        body = null;
      }
      const err = new ApiError(response.status, body);
      if (!handleCommonError(err)) status.textContent = _("The live view is not available: {reason}", { reason: errorText(err) });
      return;
    }
    status.textContent = "";
    image.src = `${API}/stream.mjpeg`;
    show(image, true);
  }

  function stopLive() {
    const image = document.getElementById("live-image");
    if (image && image.hasAttribute("src")) {
      image.removeAttribute("src"); // closes the stream
      image.hidden = true;
    }
  }

  // ---- update panel: GET /api/v1/update/status (device/update/client.py) -----

  const UPDATE_BUSY = new Set(["checking", "downloading", "installing"]);
  const UPDATE_STATE_TEXT = {
    idle: N_("Up to date, as of the last check."), // shown only when there was a check
    checking: N_("Checking the vendor's update repository\u2026"),
    available: N_("A newer firmware is available."),
    downloading: N_("Downloading into the inactive slot\u2026"),
    installing: N_("Verifying the new image as the bootloader will\u2026"),
    "pending-reboot": N_("Installed and verified; the camera restarts into it as a trial."),
    error: N_("The last update operation failed."),
  };

  function updateRows(data) {
    const running = data.running || {};
    const available = data.available;
    const checks = data.automatic_checks || {};
    const timestamp = (data.metadata || {}).timestamp;
    const advisories = data.advisories || [];
    return [
      [_("Running"), running.trial
        ? _("{version} (slot {slot}, trial)", { version: display(running.version), slot: display(running.slot) })
        : _("{version} (slot {slot})", { version: display(running.version), slot: display(running.slot) })],
      [_("Available"), available ? _("{version} ({bytes} bytes)", { version: available.version, bytes: available.length }) : _("nothing newer known")],
      [_("Fused security counter"), data.fused_counter],
      [_("Slots"), (data.slots || []).map((s) => `${s.slot}: ${s.state}${s.version ? ` ${s.version}` : ""}`).join("; ")],
      [_("Last check"), data.last_check ? formatTime(data.last_check) : _("never")],
      [_("Last error"), data.last_error ? `${data.last_error.error}: ${data.last_error.message}` : _("none")],
      [_("Update source"), data.repository_url],
      [_("Automatic checks"), checks.enabled ? _("every {hours} h", { hours: Math.round(checks.interval_s / 3600) }) : _("off")],
      [_("Timestamp metadata"), timestamp ? _("version {version}, expires {expires}", { version: timestamp.version, expires: timestamp.expires }) : _("not fetched yet")],
      [_("Advisories affecting this firmware"),
        advisories.length ? advisories.map((a) => _("{id} (fixed in {version})", { id: a.id, version: a.fixed_in })).join(", ") : _("none known")],
    ];
  }

  function updateStateText(data) {
    if (data.state === "error" && data.last_error) return _("The last update operation failed: {reason}", { reason: data.last_error.message });
    if (data.state === "idle") {
      // "Up to date" only after a check said so.
      return data.last_check
        ? _("Up to date as of {time}.", { time: formatTime(data.last_check) })
        : _("Not checked for updates yet. Use “Check for updates now”.");
    }
    return UPDATE_STATE_TEXT[data.state] ? _(UPDATE_STATE_TEXT[data.state]) : _("State: {state}", { state: display(data.state) });
  }

  // ---- install history, from the audit log ---------------------------------
  //
  // An install is update_install / update_upload; what follows tells its
  // outcome: a boot of that version as a trial, then update_confirmed (kept)
  // or update_trial_failed / a boot of another version (reverted).

  function installHistory(entries) {
    const installs = [];
    let current = null;
    for (const entry of entries) {
      const event = pick(entry, "event");
      const detail = pick(entry, "detail") || {};
      if (event === "update_install" || event === "update_upload") {
        current = {
          started: pick(entry, "time"),
          version: display(detail.version),
          slot: detail.slot,
          way: event === "update_upload" ? _("Uploaded image") : _("Update server"),
          by: pick(entry, "actor"),
          outcome: "rebooting",
          booted: null,
          finished: null,
          note: "",
        };
        installs.push(current);
        continue;
      }
      if (current === null || !["rebooting", "trial"].includes(current.outcome)) continue;
      if (event === "boot") {
        if (String(detail.version) === current.version && detail.trial) {
          current.outcome = "trial";
          current.booted = pick(entry, "time");
        } else if (String(detail.version) !== current.version) {
          current.outcome = "reverted";
          current.finished = pick(entry, "time");
          current.note = current.note || _("back to {version}", { version: display(detail.version) });
        }
      } else if (event === "update_confirmed" && String(detail.version) === current.version) {
        current.outcome = "confirmed";
        current.finished = pick(entry, "time");
      } else if (event === "update_trial_failed" && String(detail.version) === current.version) {
        current.outcome = "reverted";
        current.finished = pick(entry, "time");
        current.note = _("health check failed: {error}", { error: display(detail.error) });
      }
    }
    return installs;
  }

  const OUTCOME_TEXT = {
    rebooting: N_("installed, restarting"),
    trial: N_("running as a trial"),
    confirmed: N_("confirmed"),
    reverted: N_("reverted"),
  };

  function renderHistory(installs) {
    const body = $("update-history").tBodies[0];
    body.replaceChildren();
    for (const item of installs.slice().reverse()) {
      const row = el("tr");
      row.dataset.outcome = item.outcome;
      const outcome = _(OUTCOME_TEXT[item.outcome]) + (item.note ? ` (${item.note})` : "");
      const cls = item.outcome === "confirmed" ? "state-ok" : item.outcome === "reverted" ? "state-bad" : "state-warn";
      row.append(
        el("td", formatTime(item.started)),
        el("td", item.version),
        el("td", item.way),
        el("td", display(item.by)),
        el("td", outcome, cls),
        el("td", item.finished === null ? "—" : formatTime(item.finished)),
      );
      body.append(row);
    }
    labelCells($("update-history"));
    show($("update-history"), installs.length > 0);
    show($("update-history-empty"), installs.length === 0);
  }

  async function loadUpdateHistory() {
    try {
      state.installs = installHistory(await fetchAuditAll());
    } catch (err) {
      if (state.restarting && !(err instanceof ApiError)) return; // asked again once it is back
      if (!handleCommonError(err)) banner(errorText(err));
      return;
    }
    renderHistory(state.installs);
    if (state.updateData) renderPhases(state.updateData);
  }

  // The steps of the current (or last) install, with times, and a message that stays.
  function renderPhases(data) {
    const list = $("update-phases");
    const outcome = $("update-outcome");
    list.replaceChildren();
    const last = state.installs.length ? state.installs[state.installs.length - 1] : null;
    let steps = null;
    let message = "";
    let kind = "";
    if (data.state === "downloading" || data.state === "installing") {
      steps = [
        ["Download", data.state === "downloading" ? "current" : "done"],
        ["Verify and install", data.state === "installing" ? "current" : ""],
        ["Restart", ""], ["Trial", ""], ["Confirmed", ""],
      ];
      kind = "";
    } else if (state.restarting || data.state === "pending-reboot") {
      steps = [["Download", "done"], ["Verify and install", "done", last && last.started], ["Restart", "current"], ["Trial", ""], ["Confirmed", ""]];
      message = last ? _("Firmware {version} is installed; the camera is restarting into it as a trial.", { version: last.version }) : "";
    } else if (last !== null) {
      const installed = ["Verify and install", "done", last.started];
      if (last.outcome === "rebooting") {
        steps = [["Download", "done"], installed, ["Restart", "current"], ["Trial", ""], ["Confirmed", ""]];
        message = _("Firmware {version} is installed; the camera has not restarted into it yet.", { version: last.version });
      } else if (last.outcome === "trial") {
        steps = [["Download", "done"], installed, ["Restart", "done", last.booted], ["Trial", "current", last.booted], ["Confirmed", ""]];
        message = _("Firmware {version} is running as a trial since {time}; it is kept once its health check passes.", { version: last.version, time: formatTime(last.booted) });
      } else if (last.outcome === "confirmed") {
        steps = [["Download", "done"], installed, ["Restart", "done", last.booted], ["Trial", "done", last.booted], ["Confirmed", "done", last.finished]];
        message = _("Update succeeded: firmware {version} was installed at {installed} and confirmed at {confirmed}.", { version: last.version, installed: formatTime(last.started), confirmed: formatTime(last.finished) });
        kind = "ok";
      } else if (last.outcome === "reverted") {
        steps = [["Download", "done"], installed, ["Restart", "done", last.booted], ["Trial", "failed", last.booted], ["Reverted", "failed", last.finished]];
        message = _("Update to {version} did not stick: {reason}; the camera went back to the previous firmware at {time}.", {
          version: last.version, reason: last.note || _("the trial was not confirmed"), time: formatTime(last.finished),
        });
        kind = "bad";
      }
    }
    if (steps !== null) {
      for (const [name, cls, time] of steps) {
        const item = el("li", time ? `${_(name)} · ${formatTime(time)}` : _(name), cls || undefined);
        item.dataset.step = name;
        if (cls === "current") item.setAttribute("aria-current", "step");
        list.append(item);
      }
    }
    show(list, steps !== null);
    outcome.textContent = message;
    outcome.className = kind ? `notice ${kind}` : "notice";
    show(outcome, Boolean(message));
  }

  function renderUpdate(data) {
    const busy = UPDATE_BUSY.has(data.state);
    const previous = state.updateData;
    state.updateData = data;
    $("update-status").textContent = updateStateText(data);
    // The audit log moves on when the state does: refresh the history then.
    if (previous && (previous.state !== data.state || previous.running.version !== data.running.version
        || previous.running.trial !== data.running.trial)) {
      loadUpdateHistory();
    }
    renderPhases(data);
    const bar = $("update-progress");
    const progress = data.progress;
    if (progress && progress.total > 0 && (busy || data.state === "pending-reboot")) {
      bar.value = Math.max(0, Math.min(100, (100 * progress.bytes) / progress.total));
      $("update-percent").textContent = _("{percent} % ({bytes} of {total} bytes)", { percent: Math.floor(bar.value), bytes: progress.bytes, total: progress.total });
    } else if (busy) {
      bar.removeAttribute("value"); // indeterminate: metadata first, no byte count yet
      $("update-percent").textContent = "";
    } else {
      bar.value = 0;
      $("update-percent").textContent = "";
    }
    const install = $("update-install");
    show(install, Boolean(data.available) && !busy && data.state !== "pending-reboot");
    if (data.available) install.textContent = _("Install {version}", { version: data.available.version });
    $("update-check").disabled = busy;
    $("update-install").disabled = busy;
    $("update-upload-form").querySelector("button").disabled = busy;
    fillList($("update-details"), updateRows(data));
  }

  async function pollUpdate() {
    const status = $("update-status");
    let data;
    try {
      data = await api("GET", "/update/status");
    } catch (err) {
      if (state.restarting && !(err instanceof ApiError)) {
        status.textContent = _("The camera is restarting into the new firmware\u2026");
        return; // keep polling until it answers again
      }
      if (err instanceof ApiError && err.status === 404) {
        status.textContent = _("Updates are not available on this firmware.");
        show($("update-root"), false);
        stopUpdatePolling();
        return;
      }
      if (!handleCommonError(err)) status.textContent = errorText(err);
      stopUpdatePolling();
      return;
    }
    // Until the camera has restarted, its old run may still answer "pending-reboot".
    if (state.restarting && data.state !== "pending-reboot") {
      state.restarting = false;
      loadUpdateHistory(); // the camera is back: how did the trial go?
    }
    show($("update-root"), true);
    renderUpdate(data);
  }

  function startUpdatePolling() {
    stopUpdatePolling();
    state.updateData = null;
    loadUpdateHistory();
    pollUpdate();
    state.updateTimer = window.setInterval(pollUpdate, UPDATE_POLL_MS);
  }

  function stopUpdatePolling() {
    if (state.updateTimer !== null) window.clearInterval(state.updateTimer);
    state.updateTimer = null;
  }

  // Check, install and upload answer when done; polling shows progress meanwhile.
  async function updateAction(method, path, body, doneText) {
    try {
      const data = await api(method, path, body);
      if (data && data.rebooting) {
        state.restarting = true;
        $("update-status").textContent = doneText(data);
        await loadUpdateHistory();
        if (state.updateData) renderPhases(state.updateData);
      } else {
        pollUpdate();
      }
    } catch (err) {
      if (!handleCommonError(err)) $("update-status").textContent = errorText(err);
      pollUpdate();
    }
  }

  function onUpdateCheck() {
    $("update-status").textContent = _(UPDATE_STATE_TEXT.checking);
    updateAction("POST", "/update/check", undefined, () => "");
  }

  function onUpdateInstall() {
    $("update-install").disabled = true;
    $("update-status").textContent = _(UPDATE_STATE_TEXT.downloading);
    updateAction("POST", "/update/install", undefined,
      (data) => _("Installed {version} in slot {slot}; the camera is restarting into it as a trial.", { version: data.installed.version, slot: data.slot }));
  }

  function onUpdateUpload(event) {
    event.preventDefault();
    const file = $("update-file").files[0];
    if (!file) return;
    $("update-status").textContent = _("Sending {file} ({bytes} bytes)\u2026", { file: file.name, bytes: file.size });
    updateAction("POST", "/update/upload", file,
      (data) => _("Installed {version} in slot {slot}; the camera is restarting into it as a trial.", { version: data.installed.version, slot: data.slot }));
  }

  // ---- settings (admin): GET/PATCH /api/v1/settings ---------------------------

  function settingsError(message) {
    const box = $("settings-error");
    box.textContent = message || "";
    show(box, Boolean(message));
  }

  // While the form is being (re)loaded it cannot be edited: a late answer must not
  // overwrite what the admin is typing.
  function settingsBusy(busy) {
    for (const control of $("settings-form").elements) control.disabled = busy;
    if (!busy) $("set-update-url").disabled = $("set-update-default").checked;
  }

  async function loadSettings() {
    settingsError("");
    settingsBusy(true);
    try {
      await fillSettings();
    } finally {
      settingsBusy(false);
    }
  }

  async function fillSettings() {
    let settings;
    let status;
    try {
      [settings, status] = await Promise.all([api("GET", "/settings"), api("GET", "/status")]);
    } catch (err) {
      if (!handleCommonError(err)) settingsError(errorText(err));
      return;
    }
    let update = null;
    try {
      update = await api("GET", "/update/status");
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 404) && handleCommonError(err)) return;
    }
    state.settings = settings;
    $("set-policy").value = settings.password_policy;
    $("set-update-url").value = settings.update_url || "";
    $("set-update-default").checked = false;
    $("set-update-url").disabled = false;
    const checks = update ? update.automatic_checks || {} : null;
    fillList($("settings-fixed"), [
      [_("TLS profile"), pick(status, "tls_profile")],
      [_("Automatic update checks"), checks === null ? _("updates not available")
        : checks.enabled ? _("every {hours} h ({seconds} s)", { hours: Math.round(checks.interval_s / 3600), seconds: checks.interval_s }) : _("off")],
      [_("Update source in use"), update ? update.repository_url : settings.update_url],
    ]);
  }

  async function onSaveSettings(event) {
    event.preventDefault();
    settingsError("");
    const loaded = state.settings || {};
    const body = {};
    const policy = $("set-policy").value;
    if (policy !== loaded.password_policy) body.password_policy = policy;
    if ($("set-update-default").checked) body.update_url = null;
    else if ($("set-update-url").value !== (loaded.update_url || "")) body.update_url = $("set-update-url").value;
    if (Object.keys(body).length === 0) {
      banner(_("Nothing changed."), "info");
      return;
    }
    let saved;
    try {
      saved = await api("PATCH", "/settings", body);
    } catch (err) {
      if (!handleCommonError(err)) settingsError(_("Not saved: {reason}", { reason: errorText(err) }));
      return;
    }
    if (saved && typeof saved.password_policy === "string") state.policy = saved.password_policy;
    await loadSettings();
    banner(_("Settings saved ({fields}); the change is in the audit log.", { fields: Object.keys(body).map(fieldText).join(", ") }), "ok");
  }

  // ---- routing ------------------------------------------------------------

  function showView(name) {
    for (const view of VIEWS) show($(`view-${view}`), view === name);
    for (const link of document.querySelectorAll("#nav a[data-view]")) {
      if (link.dataset.view === name) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
  }

  function route(target) {
    const name = String(target || "").replace(/^#?\/?/, "");
    if (!state.user) {
      endSession("");
      return;
    }
    stopUpdatePolling();
    stopLive();
    if (state.user.must_change) {
      show($("nav"), false);
      renderPolicy();
      showView("change-password");
      if (location.hash !== "#/change-password") history.replaceState(null, "", "#/change-password");
      return;
    }
    let view = MAIN_VIEWS.includes(name) ? name : "dashboard";
    if (ADMIN_VIEWS.has(view) && (ROLE_RANK[state.user.role] || 0) < ROLE_RANK.admin) view = "dashboard";
    show($("nav"), true);
    showView(view);
    if (location.hash !== `#/${view}`) history.replaceState(null, "", `#/${view}`);
    banner("");
    if (view === "dashboard") loadDashboard();
    else if (view === "users") loadUsers();
    else if (view === "audit") {
      setExportName();
      loadAudit("newest");
    } else if (view === "settings") loadSettings();
    else if (view === "live") loadLive();
    else if (view === "update") startUpdatePolling();
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("login-form").addEventListener("submit", onLogin);
    $("password-form").addEventListener("submit", onChangePassword);
    $("user-add-form").addEventListener("submit", onAddUser);
    $("logout").addEventListener("click", onLogout);
    $("audit-older").addEventListener("click", () => loadAudit("older"));
    $("audit-newer").addEventListener("click", () => loadAudit("newer"));
    $("update-check").addEventListener("click", onUpdateCheck);
    $("update-install").addEventListener("click", onUpdateInstall);
    $("update-upload-form").addEventListener("submit", onUpdateUpload);
    $("audit-filter").addEventListener("submit", onAuditFilter);
    $("audit-clear").addEventListener("click", onAuditClear);
    $("settings-form").addEventListener("submit", onSaveSettings);
    $("lang-switch").addEventListener("change", onLanguageSwitch);
    $("set-update-default").addEventListener("change", () => {
      $("set-update-url").disabled = $("set-update-default").checked;
    });
    window.addEventListener("hashchange", () => {
      if (state.user) route(location.hash);
    });
    start();
  });
})();
