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
  const VIEWS = ["loading", "login", "change-password", "dashboard", "live", "update", "users", "audit"];
  const MAIN_VIEWS = ["dashboard", "live", "update", "users", "audit"];
  const ADMIN_VIEWS = new Set(["update", "users", "audit"]);
  const AUDIT_PAGE_SIZE = 50;
  const UPDATE_POLL_MS = 1000;

  // Password policy profiles the device can be configured with (device/config.py).
  const POLICY_RULES = {
    "nist-800-63b": [
      "At least 15 characters (NIST SP 800-63B); spaces and any characters are allowed, no composition rules.",
      "Not a commonly used password and not a known default such as admin/admin.",
      "Not your user name and not the initial password from the label.",
    ],
    "kr-terminal": [
      "At least 8 characters from 3 of: lower-case letters, upper-case letters, digits, symbols;",
      "or at least 10 characters from 2 of them.",
      "Not a commonly used password and not a known default such as admin/admin.",
      "Not your user name and not the initial password from the label.",
    ],
  };

  const state = {
    user: null, // {username, role, must_change}
    csrf: null, // CSRF token, memory only
    audit: null, // current audit page {after, limit, head}
    updateTimer: null,
    restarting: false, // an update was installed: connection errors are the reboot
    policy: null,
  };

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
    if (typeof value === "boolean") return value ? "yes" : "no";
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
  function banner(message, kind) {
    const node = $("banner");
    node.textContent = message || "";
    node.className = kind === "ok" ? "banner ok" : "banner";
    node.setAttribute("role", kind === "ok" ? "status" : "alert");
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
      banner(`The device did not answer: ${err.message}`);
      return true;
    }
    if (err.status === 401) {
      endSession("Your session has ended. Please log in again.");
      return true;
    }
    if (err.code === "password_change_required") {
      if (state.user) state.user.must_change = true;
      route("change-password");
      return true;
    }
    if (err.code === "csrf") {
      endSession("This page lost its session token. Please log in again.");
      return true;
    }
    return false;
  }

  function errorText(err) {
    if (err instanceof ApiError) {
      if (err.code === "forbidden") return `Not allowed: ${err.message}`;
      return err.message;
    }
    return `The device did not answer: ${err.message}`;
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
    who.textContent = `${state.user.username} (${state.user.role})`;
    show(who, true);
    const rank = ROLE_RANK[state.user.role] || 0;
    for (const link of document.querySelectorAll("#nav [data-min-role]")) {
      show(link, rank >= (ROLE_RANK[link.dataset.minRole] || 99));
    }
  }

  function endSession(message) {
    state.user = null;
    state.csrf = null;
    show($("nav"), false);
    show($("whoami"), false);
    stopUpdatePolling();
    stopLive();
    showView("login");
    const error = $("login-error");
    error.textContent = message || "";
    show(error, Boolean(message));
    if (location.hash !== "" && location.hash !== "#/login") history.replaceState(null, "", "#/login");
  }

  async function start() {
    loadDeviceName();
    try {
      const data = await api("GET", "/session");
      if (!state.csrf && typeof pick(data, "csrf_token") !== "string") {
        // The CSRF token lived only in the memory of the page before this
        // reload, and this device does not hand it out again: without it
        // nothing can be changed (not even logging out), so log in afresh.
        $("login-username").value = pick(data, "username") ?? "admin";
        endSession("The page was reloaded. Log in again to continue.");
        return;
      }
      setSession(data);
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
    } catch {
      // The header is decoration; the dashboard reports errors.
    }
  }

  async function onLogin(event) {
    event.preventDefault();
    const username = $("login-username").value;
    const password = $("login-password").value;
    const error = $("login-error");
    show(error, false);
    try {
      const data = await api("POST", "/session", { username, password });
      $("login-password").value = "";
      setSession(data, username);
      loadDeviceName(); // serial number and firmware are shown once logged in
      // The bearer token in the body is for API clients; the browser uses the cookie.
      route(state.user.must_change ? "change-password" : location.hash);
    } catch (err) {
      if (err instanceof ApiError && err.code === "throttled") {
        const wait = Number(err.body.retry_after);
        error.textContent = `Too many failed logins. Try again in ${Number.isFinite(wait) ? wait : "a few"} seconds.`;
      } else if (err instanceof ApiError && err.code === "invalid_credentials") {
        error.textContent = "Wrong user name or password.";
      } else {
        error.textContent = errorText(err);
      }
      show(error, true);
    }
  }

  async function onLogout() {
    try {
      await api("DELETE", "/session");
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 401)) banner(errorText(err));
    }
    endSession("You are logged out.");
  }

  // ---- forced password change ---------------------------------------------

  function renderPolicy() {
    const list = $("policy-rules");
    list.replaceChildren();
    const known = state.policy && POLICY_RULES[state.policy];
    if (known) {
      $("policy-intro").textContent = `The device checks a new password against its "${state.policy}" policy:`;
      for (const rule of known) list.append(el("li", rule));
      return;
    }
    $("policy-intro").textContent = "The device checks a new password against its selected policy profile:";
    for (const [name, rules] of Object.entries(POLICY_RULES)) {
      const item = el("li", `${name}: `);
      item.append(rules.join(" "));
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
      $("password-error").textContent = "The two new passwords differ.";
      show(box, true);
      return;
    }
    try {
      await api("POST", "/session/password", { current_password: current, new_password: next });
    } catch (err) {
      if (err instanceof ApiError && err.code === "password_policy") {
        $("password-error").textContent = "The device rejected this password:";
        // The server's reasons, verbatim.
        for (const reason of err.body.reasons || []) reasons.append(el("li", reason));
      } else if (err instanceof ApiError && err.status === 401) {
        endSession("Your session has ended. Please log in again.");
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
      banner("Password changed. Use the new password from now on.", "ok");
    } catch {
      endSession("Password changed. Log in with your new password.");
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
      ["Vendor", pick(info, "vendor", "identity.vendor", "device.vendor")],
      ["Model", pick(info, "model", "identity.model", "device.model")],
      ["Serial number", pick(info, "serial", "identity.serial", "device.serial")],
      ["Hardware ID", pick(info, "hardware_id", "identity.hardware_id", "device.hardware_id")],
      ["Support ends", pick(info, "support_end", "firmware.support_end")],
    ]);
    const trial = pick(status, "trial", "boot.trial");
    fillList($("dash-firmware"), [
      ["Firmware version", pick(status, "firmware_version", "firmware.version", "version") ?? pick(info, "firmware_version", "firmware.version")],
      ["Booted slot", pick(status, "booted_slot", "boot.booted_slot", "slot")],
      ["Security counter", pick(status, "security_counter", "boot.security_counter")],
      ["Trial boot", trial === undefined ? undefined : trial ? "yes (not yet confirmed)" : "no (confirmed)", trial ? "state-warn" : "state-ok"],
      ["Measurement register", pick(status, "measurement_register", "boot.measurement_register"), "mono"],
    ]);
    const fuses = pick(status, "fuses") || {};
    const lifecycle = pick(status, "lifecycle", "fuses.lifecycle");
    const debugOff = pick(status, "debug_disabled", "fuses.debug_disabled");
    const security = [
      ["Lifecycle", lifecycle, stateClass(lifecycle)],
      ["Debug port", debugOff === undefined ? undefined : debugOff ? "disabled" : "enabled", stateClass(debugOff)],
      ["TLS profile", pick(status, "tls_profile", "security.tls_profile") ?? pick(info, "tls_profile")],
      ["Password policy", pick(status, "password_policy", "security.password_policy") ?? pick(info, "password_policy")],
    ];
    const notices = pick(status, "notices", "boot.notices");
    if (Array.isArray(notices)) {
      security.push(["Boot notices", notices.length ? notices.join("; ") : "none", notices.length ? "state-warn" : "state-ok"]);
    }
    const measurements = pick(status, "measurements");
    if (Array.isArray(measurements)) {
      security.push(["Measured boot", `${measurements.length} stages: ${measurements.map((m) => pick(m, "stage")).join(", ")}`]);
    }
    const rotKeys = pick(status, "rot_keys", "fuses.rot_keys");
    if (Array.isArray(rotKeys)) {
      const revoked = rotKeys.filter((k) => (Array.isArray(k) ? k[1] : k && k.revoked)).length;
      security.push(["Root-of-trust keys", `${rotKeys.length} fused, ${revoked} revoked`]);
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
        el("td", name === booted ? `${display(name)} (booted)` : display(name)),
        el("td", display(pick(slot, "state")), stateClass(pick(slot, "state"))),
        el("td", display(pick(slot, "version"))),
        el("td", display(pick(slot, "security_counter"))),
        el("td", display(pick(slot, "reason"))),
      );
      body.append(row);
    }
    const counters = [];
    for (const [key, label] of [
      ["firmware_counter", "Firmware"],
      ["bootloader_counter", "Bootloader"],
      ["key_manifest_counter", "Key manifest"],
    ]) {
      counters.push([label, pick(fuses, key) ?? pick(status, key)]);
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
      const remove = el("button", "Delete", "danger");
      remove.type = "button";
      remove.disabled = state.user && name === state.user.username;
      remove.title = remove.disabled ? "You cannot delete yourself" : `Delete ${name}`;
      remove.addEventListener("click", () => deleteUser(name));
      const cell = el("td");
      cell.append(remove);
      row.append(
        el("td", name),
        el("td", display(pick(user, "role"))),
        el("td", display(pick(user, "must_change", "password_change_required"))),
        cell,
      );
      body.append(row);
    }
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
    if (!window.confirm(`Delete the user "${name}"?`)) return;
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

  async function loadAudit(direction) {
    const error = $("audit-error");
    show(error, false);
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
    const body = $("audit-table").tBodies[0];
    body.replaceChildren();
    for (const entry of entries) {
      const row = el("tr");
      const details = pick(entry, "detail", "details");
      row.append(
        el("td", display(pick(entry, "seq"))),
        el("td", formatTime(pick(entry, "time"))),
        el("td", display(pick(entry, "event"))),
        el("td", display(pick(entry, "actor", "user", "username"))),
        el("td", display(pick(entry, "source"))),
        el("td", typeof details === "string" ? details : display(details), "details"),
      );
      body.append(row);
    }
    const page = state.audit;
    $("audit-older").disabled = page.after === 0;
    $("audit-newer").disabled = page.after + page.limit >= page.head;
    const first = entries.length ? pick(entries[entries.length - 1], "seq") : "\u2014";
    const last = entries.length ? pick(entries[0], "seq") : "\u2014";
    $("audit-page").textContent = `Entries ${first}\u2013${last} of ${page.head}`;
  }

  // ---- live view hook: GET /api/v1/stream.mjpeg ------------------------------

  async function loadLive() {
    const status = $("live-status");
    const image = $("live-image");
    status.textContent = "Connecting\u2026";
    // Ask once with fetch so a missing route shows a message, then let the
    // <img> element hold the multipart stream (same origin, cookie session).
    const probe = new AbortController();
    let response;
    try {
      response = await fetch(`${API}/stream.mjpeg`, { credentials: "same-origin", signal: probe.signal, cache: "no-store" });
    } catch (err) {
      status.textContent = `The live view is not available: ${err.message}`;
      return;
    }
    probe.abort();
    if (response.status === 404) {
      status.textContent = "The live view is not available on this firmware.";
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
      if (!handleCommonError(err)) status.textContent = `The live view is not available: ${errorText(err)}`;
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
    idle: "Up to date, as of the last check.",
    checking: "Checking the vendor's update repository\u2026",
    available: "A newer firmware is available.",
    downloading: "Downloading into the inactive slot\u2026",
    installing: "Verifying the new image as the bootloader will\u2026",
    "pending-reboot": "Installed and verified; the camera restarts into it as a trial.",
    error: "The last update operation failed.",
  };

  function updateRows(data) {
    const running = data.running || {};
    const available = data.available;
    const checks = data.automatic_checks || {};
    const timestamp = (data.metadata || {}).timestamp;
    const advisories = data.advisories || [];
    return [
      ["Running", `${display(running.version)} (slot ${display(running.slot)}${running.trial ? ", trial" : ""})`],
      ["Available", available ? `${available.version} (${available.length} bytes)` : "nothing newer known"],
      ["Fused security counter", data.fused_counter],
      ["Slots", (data.slots || []).map((s) => `${s.slot}: ${s.state}${s.version ? ` ${s.version}` : ""}`).join("; ")],
      ["Last check", data.last_check ? formatTime(data.last_check) : "never"],
      ["Last error", data.last_error ? `${data.last_error.error}: ${data.last_error.message}` : "none"],
      ["Update source", data.repository_url],
      ["Automatic checks", checks.enabled ? `every ${Math.round(checks.interval_s / 3600)} h` : "off"],
      ["Timestamp metadata", timestamp ? `version ${timestamp.version}, expires ${timestamp.expires}` : "not fetched yet"],
      ["Advisories affecting this firmware",
        advisories.length ? advisories.map((a) => `${a.id} (fixed in ${a.fixed_in})`).join(", ") : "none known"],
    ];
  }

  function renderUpdate(data) {
    const busy = UPDATE_BUSY.has(data.state);
    $("update-status").textContent =
      data.state === "error" && data.last_error
        ? `The last update operation failed: ${data.last_error.message}`
        : UPDATE_STATE_TEXT[data.state] || `State: ${display(data.state)}`;
    const bar = $("update-progress");
    const progress = data.progress;
    if (progress && progress.total > 0 && (busy || data.state === "pending-reboot")) {
      bar.value = Math.max(0, Math.min(100, (100 * progress.bytes) / progress.total));
      $("update-percent").textContent = `${Math.floor(bar.value)} % (${progress.bytes} of ${progress.total} bytes)`;
    } else if (busy) {
      bar.removeAttribute("value"); // indeterminate: metadata first, no byte count yet
      $("update-percent").textContent = "";
    } else {
      bar.value = 0;
      $("update-percent").textContent = "";
    }
    const install = $("update-install");
    show(install, Boolean(data.available) && !busy && data.state !== "pending-reboot");
    if (data.available) install.textContent = `Install ${data.available.version}`;
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
        status.textContent = "The camera is restarting into the new firmware\u2026";
        return; // keep polling until it answers again
      }
      if (err instanceof ApiError && err.status === 404) {
        status.textContent = "Updates are not available on this firmware.";
        show($("update-root"), false);
        stopUpdatePolling();
        return;
      }
      if (!handleCommonError(err)) status.textContent = errorText(err);
      stopUpdatePolling();
      return;
    }
    state.restarting = false;
    show($("update-root"), true);
    renderUpdate(data);
  }

  function startUpdatePolling() {
    stopUpdatePolling();
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
      } else {
        pollUpdate();
      }
    } catch (err) {
      if (!handleCommonError(err)) $("update-status").textContent = errorText(err);
      pollUpdate();
    }
  }

  function onUpdateCheck() {
    $("update-status").textContent = UPDATE_STATE_TEXT.checking;
    updateAction("POST", "/update/check", undefined, () => "");
  }

  function onUpdateInstall() {
    $("update-install").disabled = true;
    $("update-status").textContent = UPDATE_STATE_TEXT.downloading;
    updateAction("POST", "/update/install", undefined,
      (data) => `Installed ${data.installed.version} in slot ${data.slot}; the camera is restarting into it as a trial.`);
  }

  function onUpdateUpload(event) {
    event.preventDefault();
    const file = $("update-file").files[0];
    if (!file) return;
    $("update-status").textContent = `Sending ${file.name} (${file.size} bytes)\u2026`;
    updateAction("POST", "/update/upload", file,
      (data) => `Installed ${data.installed.version} in slot ${data.slot}; the camera is restarting into it as a trial.`);
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
    else if (view === "audit") loadAudit("newest");
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
    window.addEventListener("hashchange", () => {
      if (state.user) route(location.hash);
    });
    start();
  });
})();
