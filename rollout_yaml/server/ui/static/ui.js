// rollout-yaml pages: every action is a plain link or form post; this file only adds the
// OAuth2 popup. Served from /ui/static (the Content-Security-Policy allows no inline script).
(function () {
  "use strict";
  var MESSAGE = "rollout-yaml:credential";

  // The page an App's consent flow ends on, inside the popup: tell the portal, then close.
  var done = document.querySelector("[data-connect-result]");
  if (done && window.opener && !window.opener.closed) {
    window.opener.postMessage(
      {
        type: MESSAGE,
        credential: done.getAttribute("data-credential"),
        app: done.getAttribute("data-app"),
        status: done.getAttribute("data-connect-result"),
      },
      window.location.origin
    );
    window.setTimeout(function () { window.close(); }, 600);
  }

  // The portal: open a connect link as a popup, and reload when it reports back (or closes:
  // an App's page may cut the popup's tie to its opener, and the list shows the outcome).
  function reloadOnce() {
    if (!reloadOnce.done) {
      reloadOnce.done = true;
      window.location.reload();
    }
  }
  window.addEventListener("message", function (event) {
    if (event.origin === window.location.origin && event.data && event.data.type === MESSAGE) {
      reloadOnce();
    }
  });
  document.addEventListener("click", function (event) {
    var link = event.target.closest ? event.target.closest("a[data-popup]") : null;
    if (!link) { return; }
    var popup = window.open(link.href, "rollout-yaml-connect", "popup,width=520,height=680");
    if (!popup) { return; } // blocked: the link opens in a new tab instead
    event.preventDefault();
    var watch = window.setInterval(function () {
      if (popup.closed) {
        window.clearInterval(watch);
        reloadOnce();
      }
    }, 500);
  });
})();
