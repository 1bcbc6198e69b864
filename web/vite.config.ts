/**
 * Vite builds the page (index.html + src/*.ts + style.css) into a static
 * bundle in web/dist: index.html and hashed files under assets/, which nginx
 * serves (`location = /` and `location /assets/`, nginx/nginx.conf.template).
 * `npm run build` (scripts/build.mjs) runs it when dist is missing or stale.
 * `npx vite` in web/ serves the page with live reload, proxying the API to
 * a running stack (`npm start`, nginx on :8080, or VITE_API_TARGET).
 */
import { defineConfig } from 'vite';

const target = process.env.VITE_API_TARGET ?? 'http://127.0.0.1:8080';
const api = ['/auth', '/top', '/rank', '/around', '/history', '/boards', '/live', '/me', '/admin', '/score', '/health'];

export default defineConfig({
  root: import.meta.dirname,
  base: '/',
  build: {
    outDir: process.env.WEB_OUT_DIR ?? 'dist',
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: true,
  },
  server: {
    host: '127.0.0.1',
    proxy: Object.fromEntries(api.map((p) => [p, { target, changeOrigin: false }])),
  },
});
