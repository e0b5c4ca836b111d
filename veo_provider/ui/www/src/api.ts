import type { Video, VideoList } from "./types";

/** A path of the host resolved against its <base href> (Airflow may be served under a sub-path). */
export function hostUrl(path: string): string {
  return new URL(path.replace(/^\//, ""), document.baseURI).toString();
}

export function videosUrl(dagId: string, runId: string, taskId?: string, mapIndex?: string): string {
  const path = `veo-ui/api/dags/${encodeURIComponent(dagId)}/dagRuns/${encodeURIComponent(runId)}/videos`;
  const query = new URLSearchParams();
  if (taskId) query.set("task_id", taskId);
  if (taskId && mapIndex !== undefined && /^-?\d+$/.test(mapIndex)) query.set("map_index", mapIndex);
  const qs = query.toString();
  return hostUrl(qs ? `${path}?${qs}` : path);
}

/** The one request a tab makes: every card of the run (or task instance), whatever their number. */
export async function fetchVideos(url: string, signal?: AbortSignal): Promise<Video[]> {
  // The session is the host's cookie; same-origin sends it, and <video src> sends it too.
  const res = await fetch(url, { credentials: "same-origin", signal });
  if (!res.ok) {
    const body = (await res.json().catch(() => ({}))) as { detail?: unknown };
    const detail = typeof body.detail === "string" && body.detail ? body.detail : `HTTP ${res.status}`;
    throw new Error(detail);
  }
  return ((await res.json()) as VideoList).videos;
}

/** The task instance page (its log is the page's first tab). */
export function taskInstanceUrl(v: Video): string {
  const base = `dags/${encodeURIComponent(v.dag_id)}/runs/${encodeURIComponent(v.run_id)}/tasks/${encodeURIComponent(v.task_id)}`;
  return hostUrl(v.map_index >= 0 ? `${base}/mapped/${v.map_index}` : base);
}

export function formatSeconds(seconds: number | null): string | null {
  if (seconds === null || !Number.isFinite(seconds)) return null;
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = s % 60;
  if (h) return `${h}h ${m}m`;
  if (m) return `${m}m ${rest}s`;
  return `${rest}s`;
}
