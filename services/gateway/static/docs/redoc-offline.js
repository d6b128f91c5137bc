// Loaded before ReDoc, with the page's nonce. ReDoc's bundle injects <style> elements
// as it loads, before it can be told the nonce: styles that this page's own scripts
// create carry it. The one image ReDoc fetches from the internet (its maker's logo) is
// pointed at an empty image instead, which ReDoc then hides.
"use strict";

(() => {
  const nonce = document.currentScript.nonce;
  const createElement = Document.prototype.createElement;
  Document.prototype.createElement = function (name, options) {
    const element = createElement.call(this, name, options);
    if (String(name).toLowerCase() === "style") element.setAttribute("nonce", nonce);
    return element;
  };
  const local = (value) => {
    const url = new URL(String(value), document.baseURI);
    return url.origin === location.origin || url.protocol === "data:" ? value : "data:,";
  };
  const src = Object.getOwnPropertyDescriptor(HTMLImageElement.prototype, "src");
  Object.defineProperty(HTMLImageElement.prototype, "src", {
    ...src,
    set(value) {
      src.set.call(this, local(value));
    },
  });
  const setAttribute = Element.prototype.setAttribute;
  Element.prototype.setAttribute = function (name, value) {
    const image = this instanceof HTMLImageElement && String(name).toLowerCase() === "src";
    return setAttribute.call(this, name, image ? local(value) : value);
  };
})();
