import { ChakraProvider, createSystem, defaultConfig } from "@chakra-ui/react";

import { Gallery } from "./Gallery";
import type { PluginProps } from "./types";
import { VideosTab } from "./VideosTab";

let fallbackSystem: ReturnType<typeof createSystem> | undefined;

/** The host's Chakra system when it shares one (light/dark theme follow the UI), else the default. */
function system() {
  const shared = (globalThis as { ChakraUISystem?: ReturnType<typeof createSystem> }).ChakraUISystem;
  return shared ?? (fallbackSystem ??= createSystem(defaultConfig));
}

/** The default (and only) export: the host renders it with the page's route params. */
export default function VeoVideos(props: PluginProps) {
  return (
    <ChakraProvider value={system()}>
      {/* The nav page has no route params; the dag_run and task_instance tabs have a DAG and a run. */}
      {props.dagId ? <VideosTab {...props} /> : <Gallery />}
    </ChakraProvider>
  );
}
