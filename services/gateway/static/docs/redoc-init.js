// ReDoc for the gateway's OpenAPI document. The nonce this script was loaded with is the
// one the page's Content-Security-Policy allows for the styles ReDoc injects.
"use strict";

const root = document.getElementById("redoc");
Redoc.init(root.dataset.openapi, { nonce: document.currentScript.nonce }, root);
