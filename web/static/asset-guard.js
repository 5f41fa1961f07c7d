// Recovers a page whose assets this server does not hold. A page names its modules and styles
// under /v/<version>/ (signaling/api/site.py); the server answers 404 for any version but its own
// (right after an upgrade, or from an instance of another version during a rolling upgrade).
// A module graph with one missing file does not run at all, so nothing of two versions is ever
// mixed; this reloads the page once to fetch HTML and assets of one version again, and if that
// happens again soon after, says so instead of reloading in a loop.
//
// A classic script, loaded unversioned and before the modules (it must work whatever version
// the page is): it only listens, so it costs nothing when every asset loads.
(function () {
  "use strict";
  var KEY = "tc.assetReloadAt";
  var QUIET_MS = 30000;

  function versioned(url) {
    try {
      return new URL(url, location.href).pathname.indexOf("/v/") === 0;
    } catch (error) {
      return false;
    }
  }

  function lastReload() {
    try {
      return Number(sessionStorage.getItem(KEY)) || 0;
    } catch (error) {
      return 0;
    }
  }

  function rememberReload() {
    try {
      sessionStorage.setItem(KEY, String(Date.now()));
      return true;
    } catch (error) {
      return false; // storage blocked: no way to stop a loop, so do not start one
    }
  }

  function hasRules(link) {
    try {
      return Boolean(link.sheet && link.sheet.cssRules.length);
    } catch (error) {
      return false; // a refused sheet (a 404 is not text/css) has rules nobody may read
    }
  }

  function unstyled() {
    var links = document.querySelectorAll('link[rel="stylesheet"]');
    for (var i = 0; i < links.length; i++) {
      if (versioned(links[i].href) && !hasRules(links[i])) return true;
    }
    return false;
  }

  function explain() {
    if (document.getElementById("asset-guard-message")) return;
    if (unstyled()) {
      // Whatever version's styles, to read this message: nothing of the page runs anyway.
      var style = document.createElement("link");
      style.rel = "stylesheet";
      style.href = "/static/app.css";
      document.head.appendChild(style);
    }
    var images = document.querySelectorAll("img");
    for (var i = 0; i < images.length; i++) {
      var path = new URL(images[i].src, location.href).pathname.match(/^\/v\/[^/]+(\/static\/.+)$/);
      if (path && images[i].naturalWidth === 0) images[i].src = path[1]; // the logo, unbroken
    }
    var card = document.createElement("section");
    card.className = "card card-narrow";
    // The page's own heading never came: this card is what the page is now.
    var heading = document.createElement("h1");
    var parts = [["fr", "Page à recharger"], ["en", "Reload the page"]];
    for (var j = 0; j < parts.length; j++) {
      var part = document.createElement("span");
      part.lang = parts[j][0];
      part.textContent = (j ? " / " : "") + parts[j][1];
      heading.appendChild(part);
    }
    card.appendChild(heading);
    var box = document.createElement("div");
    box.id = "asset-guard-message";
    box.className = "alert alert-error";
    box.setAttribute("role", "alert");
    card.appendChild(box);
    var texts = [
      ["fr", "Le service vient d'être mis à jour et cette page n'a pas pu se charger entièrement. Rechargez-la dans un instant."],
      ["en", "The service was just updated and this page could not load completely. Reload it in a moment."],
    ];
    for (var i = 0; i < texts.length; i++) {
      var p = document.createElement("p");
      p.lang = texts[i][0];
      p.textContent = texts[i][1];
      box.appendChild(p);
    }
    var button = document.createElement("button");
    button.type = "button";
    button.className = "btn btn-secondary";
    button.textContent = "Recharger / Reload";
    button.addEventListener("click", function () {
      location.reload();
    });
    card.appendChild(button);
    var main = document.getElementById("main");
    var loading = document.getElementById("loading");
    if (loading) loading.hidden = true; // it would never end
    (main || document.body).prepend(card);
  }

  function failed(event) {
    var target = event.target;
    var url = "";
    if (target instanceof HTMLScriptElement) url = target.src;
    else if (target instanceof HTMLLinkElement && target.rel === "stylesheet") url = target.href;
    if (!url || !versioned(url)) return;
    console.warn("asset-guard: " + url + " is not on this server; loading the page again");
    if (Date.now() - lastReload() > QUIET_MS && rememberReload()) {
      location.reload();
      return;
    }
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", explain);
    else explain();
  }

  // Load errors do not bubble: listen in the capture phase, before any element exists.
  window.addEventListener("error", failed, true);
})();
