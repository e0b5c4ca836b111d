import { useState } from "react";

import { formatSeconds, taskInstanceUrl } from "./api";
import type { Video } from "./types";

// A run shows up to hundreds of cards: they are plain elements styled once by the grid that
// holds them (CARDS, in Chakra tokens), not one styled component per element.

/** Actions whose output is 720p when no resolution is asked for (the API's default). */
const GENERATING = new Set(["text2video", "image2video", "ingredients2video"]);
const PROMPT_CUT = 160;

export const CARDS = {
  display: "grid",
  gap: "4",
  gridTemplateColumns: { base: "1fr", md: "repeat(2, minmax(0, 1fr))", xl: "repeat(3, minmax(0, 1fr))" },
  "& article": {
    display: "flex",
    flexDirection: "column",
    gap: "2",
    borderWidth: "1px",
    borderColor: "border",
    borderRadius: "md",
    padding: "3",
  },
  "& header": { display: "flex", justifyContent: "space-between", alignItems: "center", gap: "2" },
  "& header a": { fontWeight: "semibold" },
  "& a": { color: "fg", textDecoration: "underline", textUnderlineOffset: "2px" },
  "& .veo-state": { fontSize: "xs", borderRadius: "sm", px: "1.5", bg: "bg.muted", whiteSpace: "nowrap" },
  "& .veo-state[data-state=success]": { bg: "green.subtle", color: "green.fg" },
  "& .veo-state[data-state=failed]": { bg: "red.subtle", color: "red.fg" },
  "& .veo-state[data-state=deferred]": { bg: "purple.subtle", color: "purple.fg" },
  "& .veo-state[data-state=running]": { bg: "cyan.subtle", color: "cyan.fg" },
  "& .veo-state[data-state=up_for_retry]": { bg: "yellow.subtle", color: "yellow.fg" },
  "& video": { width: "100%", maxHeight: "360px", background: "black", borderRadius: "sm" },
  "& .veo-placeholder": { bg: "bg.muted", borderRadius: "sm", padding: "6", textAlign: "center", color: "fg.muted" },
  "& .veo-note": { fontSize: "xs", color: "fg.muted" },
  "& .veo-prompt": { fontSize: "sm", whiteSpace: "pre-wrap", margin: 0 },
  "& .veo-more": { fontSize: "xs", color: "fg.muted", cursor: "pointer", background: "none", border: "none", padding: 0 },
  "& .veo-failure": { borderLeftWidth: "3px", borderColor: "red.500", paddingLeft: "2", color: "fg.error", fontSize: "sm" },
  "& dl": {
    display: "grid",
    gridTemplateColumns: "6.5rem 1fr",
    columnGap: "2",
    rowGap: "0.5",
    fontSize: "xs",
    alignItems: "baseline",
    margin: 0,
  },
  "& dt": { color: "fg.muted" },
  "& dd": { margin: 0, minWidth: 0 },
  "& code": { fontFamily: "mono", bg: "bg.muted", px: "1", borderRadius: "sm", wordBreak: "break-all" },
  "& .veo-link": { fontSize: "xs" },
} as const;

function label(video: Video): string {
  return video.map_index >= 0 ? `${video.task_id} [${video.map_index}]` : video.task_id;
}

function Player({ video }: { video: Video }) {
  const src = video.stream_url ?? video.video_url;
  if (src) {
    return (
      <div>
        {/* metadata only until played: a run of 100 clips reads no video bytes to show its tab */}
        <video controls preload="metadata" src={src} aria-label={`Video of ${label(video)}`} />
        {!video.stream_url && <p className="veo-note">Not stored by the task: played from the vendor's URL, which expires.</p>}
      </div>
    );
  }
  const waited = formatSeconds(video.elapsed_seconds);
  return (
    <div className="veo-placeholder" data-testid="no-player">
      {video.waiting
        ? `Waiting${waited ? ` for ${waited}` : ""}${video.veo_task_id ? ` on Veo job ${video.veo_task_id}` : ""}`
        : "No video"}
    </div>
  );
}

function Prompt({ prompt }: { prompt: string | null }) {
  const [open, setOpen] = useState(false);
  if (!prompt) return null;
  const long = prompt.length > PROMPT_CUT;
  return (
    <div>
      <p className="veo-prompt" data-testid="prompt">
        {long && !open ? `${prompt.slice(0, PROMPT_CUT)}…` : prompt}
      </p>
      {long && (
        <button type="button" className="veo-more" onClick={() => setOpen(!open)}>
          {open ? "Show less" : "Show the whole prompt"}
        </button>
      )}
    </div>
  );
}

function Fact({ name, value }: { name: string; value: string | null | undefined }) {
  if (!value) return null;
  return (
    <>
      <dt>{name}</dt>
      <dd>
        <code>{value}</code>
      </dd>
    </>
  );
}

/** ``showRun``: the card names its DAG and run (the "Veo videos" page lists many runs). */
export function VideoCard({ video, showRun = false }: { video: Video; showRun?: boolean }) {
  const elapsed = formatSeconds(video.elapsed_seconds);
  const resolution = video.resolution ?? (GENERATING.has(video.action ?? "") ? "720p (default)" : null);
  return (
    <article data-testid="video-card">
      <header>
        <a href={taskInstanceUrl(video)}>{label(video)}</a>
        <span className="veo-state" data-state={video.state ?? "none"}>
          {video.state ?? "no state"}
        </span>
      </header>
      {showRun && (
        <p className="veo-note" data-testid="run">
          {video.dag_id} · {video.run_id}
        </p>
      )}
      <Player video={video} />
      <Prompt prompt={video.prompt} />
      {(video.error_code || video.error_message) && (
        <div className="veo-failure" data-testid="failure">
          {[video.error_code, video.error_message].filter(Boolean).join(": ")}
        </div>
      )}
      <dl>
        <Fact name="model" value={video.model} />
        <Fact name="action" value={video.action} />
        <Fact name="resolution" value={resolution} />
        <Fact name="aspect ratio" value={video.aspect_ratio} />
        <Fact name={video.waiting ? "waiting for" : "elapsed"} value={elapsed} />
        <Fact name="Veo job" value={video.veo_task_id} />
        <Fact name="trace id" value={video.trace_id} />
        <Fact name="written to" value={video.output_path} />
      </dl>
      <a className="veo-link" href={taskInstanceUrl(video)}>
        Task instance and log
      </a>
    </article>
  );
}
