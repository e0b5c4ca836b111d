import type { GalleryFilters, GalleryPage, Video, VideoList } from "./types";

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
  return (await getJson<VideoList>(url, signal)).videos;
}

/** GET a route of ours; an error answer becomes an Error with the route's `detail`. */
async function getJson<T>(url: string, signal?: AbortSignal): Promise<T> {
  // The session is the host's cookie; same-origin sends it, and <video src> sends it too.
  const res = await fetch(url, { credentials: "same-origin", signal });
  if (!res.ok) {
    const body = (await res.json().catch(() => ({}))) as { detail?: unknown };
    const detail = typeof body.detail === "string" && body.detail ? body.detail : `HTTP ${res.status}`;
    throw new Error(detail);
  }
  return (await res.json()) as T;
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

/** One page of the "Veo videos" page; `cursor` is the previous page's `next_cursor`. */
export function galleryUrl(filters: GalleryFilters, cursor: string | null, limit = 24): string {
  const query = new URLSearchParams({ limit: String(limit) });
  if (filters.dagId) query.set("dag_id", filters.dagId);
  if (filters.state) query.set("state", filters.state);
  if (filters.model.trim()) query.set("model", filters.model.trim());
  // Whole UTC days: from the start of `from` to the end of `to`.
  if (filters.from) query.set("start_date_gte", `${filters.from}T00:00:00Z`);
  if (filters.to) {
    const next = new Date(`${filters.to}T00:00:00Z`);
    next.setUTCDate(next.getUTCDate() + 1);
    query.set("start_date_lt", next.toISOString());
  }
  if (cursor) query.set("cursor", cursor);
  return hostUrl(`veo-ui/api/videos?${query.toString()}`);
}

export function fetchGallery(url: string, signal?: AbortSignal): Promise<GalleryPage> {
  return getJson<GalleryPage>(url, signal);
}
