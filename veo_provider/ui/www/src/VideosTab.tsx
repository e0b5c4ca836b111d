import { Box, Button, HStack, Spinner, Text } from "@chakra-ui/react";
import { useCallback, useEffect, useState } from "react";

import { fetchVideos, videosUrl } from "./api";
import type { PluginProps, Video } from "./types";
import { CARDS, VideoCard } from "./VideoCard";

type Load = { status: "loading" } | { status: "error"; message: string } | { status: "ready"; videos: Video[] };

export function VideosTab({ dagId, runId, taskId, mapIndex }: PluginProps) {
  const [load, setLoad] = useState<Load>({ status: "loading" });
  const [generation, setGeneration] = useState(0);
  const refresh = useCallback(() => setGeneration((g) => g + 1), []);

  useEffect(() => {
    if (!dagId || !runId) return;
    const abort = new AbortController();
    setLoad({ status: "loading" });
    fetchVideos(videosUrl(dagId, runId, taskId, mapIndex), abort.signal)
      .then((videos) => setLoad({ status: "ready", videos }))
      .catch((err: unknown) => {
        if (!abort.signal.aborted) setLoad({ status: "error", message: err instanceof Error ? err.message : String(err) });
      });
    return () => abort.abort();
  }, [dagId, runId, taskId, mapIndex, generation]);

  if (!dagId || !runId) return <Text p={4}>Open a DAG run or a task instance to see its videos.</Text>;
  if (load.status === "loading") return <Spinner m={4} />;
  if (load.status === "error")
    return (
      <Text p={4} color="fg.error" role="alert">
        Could not load the videos: {load.message}
      </Text>
    );
  const { videos } = load;
  return (
    <Box p={4}>
      <HStack justify="space-between" mb={3}>
        <Text fontSize="sm" color="fg.muted">
          {videos.length === 1 ? "1 Veo video" : `${videos.length} Veo videos`}
        </Text>
        <Button size="xs" variant="outline" onClick={refresh}>
          Refresh
        </Button>
      </HStack>
      {videos.length === 0 ? (
        <Text>No Veo task here.</Text>
      ) : (
        <Box css={CARDS}>
          {videos.map((v) => (
            <VideoCard key={`${v.task_id}:${v.map_index}`} video={v} />
          ))}
        </Box>
      )}
    </Box>
  );
}
