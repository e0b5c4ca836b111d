import { Box, Button, HStack, Spinner, Text } from "@chakra-ui/react";
import { useEffect, useState } from "react";

import { fetchGallery, galleryUrl } from "./api";
import type { GalleryFilters, GalleryPage } from "./types";
import { CARDS, VideoCard } from "./VideoCard";

// The "Veo videos" page: every readable DAG's videos, newest first, one request per page.
// Pages are keyset pages: "Older" follows next_cursor, "Newer" goes back along the cursors seen.

const STATES = ["", "success", "failed", "running", "deferred", "queued", "scheduled", "up_for_retry"];
const MODELS = ["veo3", "veo3-fast", "veo31", "veo31-fast", "veo31-fast-ingredients", "veo2", "veo2-fast"];
const NO_FILTERS: GalleryFilters = { dagId: "", state: "", model: "", from: "", to: "" };

const FORM = {
  display: "flex",
  flexWrap: "wrap",
  gap: "3",
  alignItems: "end",
  marginBottom: "4",
  "& label": { display: "flex", flexDirection: "column", fontSize: "xs", color: "fg.muted", gap: "1" },
  "& select, & input": {
    fontSize: "sm",
    borderWidth: "1px",
    borderColor: "border",
    borderRadius: "sm",
    px: "2",
    py: "1",
    bg: "bg",
    color: "fg",
  },
} as const;

type Load = { status: "loading" } | { status: "error"; message: string } | { status: "ready"; page: GalleryPage };

export function Gallery() {
  const [filters, setFilters] = useState<GalleryFilters>(NO_FILTERS);
  // cursors[i] is the cursor of page i (page 0 has none).
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const [dagIds, setDagIds] = useState<string[]>([]);
  const [load, setLoad] = useState<Load>({ status: "loading" });
  const cursor = cursors[cursors.length - 1];

  useEffect(() => {
    const abort = new AbortController();
    setLoad({ status: "loading" });
    fetchGallery(galleryUrl(filters, cursor), abort.signal)
      .then((page) => {
        if (page.dag_ids) setDagIds(page.dag_ids);
        setLoad({ status: "ready", page });
      })
      .catch((err: unknown) => {
        if (!abort.signal.aborted) setLoad({ status: "error", message: err instanceof Error ? err.message : String(err) });
      });
    return () => abort.abort();
  }, [filters, cursor]);

  const change = (key: keyof GalleryFilters) => (e: { target: { value: string } }) => {
    setFilters({ ...filters, [key]: e.target.value });
    setCursors([null]);
  };

  return (
    <Box p={4}>
      <Text fontSize="lg" fontWeight="semibold" mb={3}>
        Veo videos
      </Text>
      <Box as="form" css={FORM} onSubmit={(e) => e.preventDefault()} data-testid="filters">
        <label>
          DAG
          <select value={filters.dagId} onChange={change("dagId")} aria-label="DAG">
            <option value="">all DAGs</option>
            {dagIds.map((d) => (
              <option key={d} value={d}>
                {d}
              </option>
            ))}
          </select>
        </label>
        <label>
          State
          <select value={filters.state} onChange={change("state")} aria-label="State">
            {STATES.map((s) => (
              <option key={s} value={s}>
                {s || "any state"}
              </option>
            ))}
          </select>
        </label>
        <label>
          Model
          <input list="veo-models" value={filters.model} onChange={change("model")} aria-label="Model" placeholder="any model" />
          <datalist id="veo-models">
            {MODELS.map((m) => (
              <option key={m} value={m} />
            ))}
          </datalist>
        </label>
        <label>
          Started from
          <input type="date" value={filters.from} onChange={change("from")} aria-label="Started from" />
        </label>
        <label>
          to
          <input type="date" value={filters.to} onChange={change("to")} aria-label="Started to" />
        </label>
      </Box>
      <Results load={load} />
      <HStack mt={4} gap={2}>
        <Button size="xs" variant="outline" disabled={cursors.length === 1} onClick={() => setCursors(cursors.slice(0, -1))}>
          Newer
        </Button>
        <Text fontSize="xs" color="fg.muted">
          page {cursors.length}
        </Text>
        <Button
          size="xs"
          variant="outline"
          disabled={load.status !== "ready" || !load.page.next_cursor}
          onClick={() => load.status === "ready" && load.page.next_cursor && setCursors([...cursors, load.page.next_cursor])}
        >
          Older
        </Button>
      </HStack>
    </Box>
  );
}

function Results({ load }: { load: Load }) {
  if (load.status === "loading") return <Spinner m={4} />;
  if (load.status === "error")
    return (
      <Text color="fg.error" role="alert">
        Could not load the videos: {load.message}
      </Text>
    );
  if (load.page.videos.length === 0) return <Text>No Veo videos match.</Text>;
  return (
    <Box css={CARDS}>
      {load.page.videos.map((v) => (
        <VideoCard key={`${v.dag_id}:${v.run_id}:${v.task_id}:${v.map_index}`} video={v} showRun />
      ))}
    </Box>
  );
}
