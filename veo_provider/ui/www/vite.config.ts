/// <reference types="vitest/config" />
// The Videos tab as one UMD bundle for Airflow's UI (3.1+): the host sets React, ReactDOM,
// ReactJSXRuntime, ChakraUI and EmotionReact on globalThis, clears globalThis.AirflowPlugin,
// imports the bundle and renders the function component it leaves there. The output is
// committed (../static) and must be reproduced byte for byte by `npm ci && npm run build`.
import { defineConfig } from "vite";

const HOST_GLOBALS: Record<string, string> = {
  react: "React",
  "react-dom": "ReactDOM",
  "react/jsx-runtime": "ReactJSXRuntime",
  "@chakra-ui/react": "ChakraUI",
  "@emotion/react": "EmotionReact",
};

export default defineConfig(({ command }) => ({
  // Library mode leaves process.env.NODE_ENV in place; the tests run React in development mode.
  define: command === "build" ? { "process.env.NODE_ENV": JSON.stringify("production") } : {},
  build: {
    outDir: "../static", // relative to this folder (npm runs scripts here)
    emptyOutDir: true,
    minify: true,
    sourcemap: false,
    reportCompressedSize: false,
    lib: {
      entry: "src/main.tsx",
      formats: ["umd"],
      // Every plugin bundle uses this one name: the host reads it right after the import.
      name: "AirflowPlugin",
      fileName: () => "videos.umd.js",
    },
    rollupOptions: {
      external: Object.keys(HOST_GLOBALS),
      output: { globals: HOST_GLOBALS, exports: "default" },
    },
  },
  test: {
    environment: "jsdom",
    globals: true,
    include: ["tests/**/*.test.ts", "tests/**/*.test.tsx"],
    testTimeout: 30000, // 100 cards in jsdom take seconds on a busy machine
  },
}));
