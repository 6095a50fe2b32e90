// Starts Swagger UI on the gateway's own OpenAPI document (a file of its own: the page allows no
// inline script). "Authorize" takes an API key as a bearer token.
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    tryItOutEnabled: false,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
  });
});
