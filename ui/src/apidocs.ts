// The API reference the node serves at /api/docs: Swagger UI from the npm package, bundled here,
// reading this node's own OpenAPI document. Nothing is loaded from elsewhere (the validator
// badge, which calls a public service, is off).
import SwaggerUI from 'swagger-ui-dist/swagger-ui-es-bundle.js';
import 'swagger-ui-dist/swagger-ui.css';

SwaggerUI({
  url: '/api/openapi.json',
  dom_id: '#swagger',
  deepLinking: true,
  validatorUrl: null,
});
