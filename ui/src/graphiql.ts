// The GraphiQL page the node serves at /graphql: the npm package, bundled here, talking to this
// node's /graphql (queries) and /graphql/ws (subscriptions). Nothing is loaded from elsewhere.
import { createGraphiQLFetcher } from '@graphiql/toolkit';
import { GraphiQL } from 'graphiql';
import { createElement } from 'react';
import { createRoot } from 'react-dom/client';
import 'graphiql/graphiql.css';

const ws = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/graphql/ws`;
const fetcher = createGraphiQLFetcher({ url: '/graphql', subscriptionUrl: ws });
const defaultQuery = `# Search the federation's catalogs, and see who answered.
query {
  search(text: "crab", limit: 5) {
    total
    hits { title mission target nodeName url }
    answered
    missing { node reason }
  }
  federation { name members { name institution reach } }
}
`;
const root = document.getElementById('graphiql');
if (root) createRoot(root).render(createElement(GraphiQL, { fetcher, defaultQuery }));
