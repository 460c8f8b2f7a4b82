/// <reference types="vitest/config" />
import preact from '@preact/preset-vite'
import { defineConfig } from 'vite'
import { VitePWA } from 'vite-plugin-pwa'

export default defineConfig({
  plugins: [
    preact(),
    VitePWA({
      strategies: 'injectManifest',
      srcDir: 'src',
      filename: 'sw.ts',
      // main.tsx registers the worker itself, to offer a reload when a new version takes over.
      injectRegister: false,
      // A new version takes over at once; the page then offers a reload (main.tsx).
      injectManifest: { globPatterns: ['**/*.{js,css,html,svg,png,woff2}'] },
      workbox: { clientsClaim: true, skipWaiting: true },
      manifest: {
        name: 'Fieldbook',
        short_name: 'Fieldbook',
        description: 'The CRM your sales team actually uses, online or not.',
        lang: 'en',
        start_url: '/',
        scope: '/',
        display: 'standalone',
        orientation: 'portrait',
        theme_color: '#0f5132',
        background_color: '#ffffff',
        icons: [
          { src: '/icons/icon-192.png', sizes: '192x192', type: 'image/png' },
          { src: '/icons/icon-512.png', sizes: '512x512', type: 'image/png' },
          { src: '/icons/icon-maskable-512.png', sizes: '512x512', type: 'image/png', purpose: 'maskable' },
        ],
      },
    }),
  ],
  build: { manifest: true, target: 'es2022', sourcemap: false },
  server: { proxy: { '/api': 'http://127.0.0.1:8000' } },
  test: { environment: 'node', include: ['tests/**/*.test.ts'], setupFiles: ['fake-indexeddb/auto'] },
})
