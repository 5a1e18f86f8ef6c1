// The interactive API docs: Swagger UI, from this package's copy (static/swagger-ui), for /openapi.json.
"use strict";

window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,  // the default badge would load from another site, which the page's policy forbids
  // The server refuses writes that carry neither a JSON body nor this header nor a token (see guard.py).
  requestInterceptor: (request) => {
    if (!["GET", "HEAD"].includes((request.method || "GET").toUpperCase())) request.headers["X-Requested-With"] = "swagger-ui";
    return request;
  },
});
