import { Badge, Box, Button, HStack, Link, Stack, Text } from "@chakra-ui/react";
import { useState } from "react";

import { formatSeconds, taskInstanceUrl } from "./api";
import type { Video } from "./types";

const STATE_PALETTE: Record<string, string> = {
  success: "green",
  failed: "red",
  upstream_failed: "orange",
  deferred: "purple",
  running: "cyan",
  queued: "gray",
  scheduled: "gray",
  up_for_retry: "yellow",
};

/** Actions whose output is 720p when no resolution is asked for (the API's default). */
const GENERATING = new Set(["text2video", "image2video", "ingredients2video"]);

function Player({ video }: { video: Video }) {
  const src = video.stream_url ?? video.video_url;
  if (src) {
    return (
      <Box>
        {/* metadata only until played: a run of 100 clips reads no video bytes to show its tab */}
        <video
          controls
          preload="metadata"
          src={src}
          style={{ width: "100%", maxHeight: "360px", background: "black", borderRadius: "4px" }}
          aria-label={`Video of ${label(video)}`}
        />
        {!video.stream_url && (
          <Text fontSize="xs" color="fg.muted">
            Not stored by the task: played from the vendor's URL, which expires.
          </Text>
        )}
      </Box>
    );
  }
  const waited = formatSeconds(video.elapsed_seconds);
  return (
    <Box bg="bg.muted" borderRadius="sm" p={6} textAlign="center" data-testid="no-player">
      <Text color="fg.muted">
        {video.waiting
          ? `Waiting${waited ? ` for ${waited}` : ""}${video.veo_task_id ? ` on Veo job ${video.veo_task_id}` : ""}`
          : "No video"}
      </Text>
    </Box>
  );
}

function label(video: Video): string {
  return video.map_index >= 0 ? `${video.task_id} [${video.map_index}]` : video.task_id;
}

function Prompt({ prompt }: { prompt: string | null }) {
  const [open, setOpen] = useState(false);
  if (!prompt) return null;
  const long = prompt.length > 160;
  return (
    <Box>
      <Text fontSize="sm" whiteSpace="pre-wrap" data-testid="prompt">
        {long && !open ? `${prompt.slice(0, 160)}…` : prompt}
      </Text>
      {long && (
        <Button size="xs" variant="plain" px={0} onClick={() => setOpen(!open)}>
          {open ? "Show less" : "Show the whole prompt"}
        </Button>
      )}
    </Box>
  );
}

function Fact({ name, value }: { name: string; value: string | null | undefined }) {
  if (!value) return null;
  // Plain elements styled by the list (FACTS): a run shows 100 cards of 8 facts each.
  return (
    <>
      <dt>{name}</dt>
      <dd>
        <code>{value}</code>
      </dd>
    </>
  );
}

const FACTS = {
  display: "grid",
  gridTemplateColumns: "6.5rem 1fr",
  columnGap: "2",
  rowGap: "0.5",
  fontSize: "xs",
  alignItems: "baseline",
  "& dt": { color: "fg.muted" },
  "& dd": { margin: 0, minWidth: 0 },
  "& code": { fontFamily: "mono", bg: "bg.muted", px: "1", borderRadius: "sm", wordBreak: "break-all" },
} as const;

export function VideoCard({ video }: { video: Video }) {
  const elapsed = formatSeconds(video.elapsed_seconds);
  return (
    <Stack as="article" gap={2} borderWidth="1px" borderRadius="md" p={3} data-testid="video-card">
      <HStack justify="space-between">
        <Link href={taskInstanceUrl(video)} fontWeight="semibold">
          {label(video)}
        </Link>
        <Badge colorPalette={STATE_PALETTE[video.state ?? ""] ?? "gray"}>{video.state ?? "no state"}</Badge>
      </HStack>
      <Player video={video} />
      <Prompt prompt={video.prompt} />
      {(video.error_code || video.error_message) && (
        <Box borderLeftWidth="3px" borderColor="red.500" pl={2} data-testid="failure">
          <Text fontSize="sm" color="fg.error">
            {[video.error_code, video.error_message].filter(Boolean).join(": ")}
          </Text>
        </Box>
      )}
      <Box as="dl" css={FACTS}>
        <Fact name="model" value={video.model} />
        <Fact name="action" value={video.action} />
        <Fact name="resolution" value={video.resolution ?? (GENERATING.has(video.action ?? "") ? "720p (default)" : null)} />
        <Fact name="aspect ratio" value={video.aspect_ratio} />
        <Fact name={video.waiting ? "waiting for" : "elapsed"} value={elapsed} />
        <Fact name="Veo job" value={video.veo_task_id} />
        <Fact name="trace id" value={video.trace_id} />
        <Fact name="written to" value={video.output_path} />
      </Box>
      <Link href={taskInstanceUrl(video)} fontSize="xs">
        Task instance and log
      </Link>
    </Stack>
  );
}
