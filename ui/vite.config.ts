import { defineConfig } from 'vite';

// The node serves the built files under /ui/ (see web/src/ui.rs).
export default defineConfig({
  base: '/ui/',
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: false,
    reportCompressedSize: false,
    rollupOptions: {
      // The application, the GraphiQL page served at /graphql and the API reference at /api/docs.
      input: { main: 'index.html', graphiql: 'graphiql.html', apidocs: 'apidocs.html' },
    },
  },
});
