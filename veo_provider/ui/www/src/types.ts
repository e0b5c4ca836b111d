/** One card of the Videos tab, as `GET /veo-ui/api/dags/{dag}/dagRuns/{run}/videos` answers it. */
export interface Video {
  dag_id: string;
  run_id: string;
  task_id: string;
  map_index: number;
  state: string | null;
  try_number: number;
  prompt: string | null;
  model: string | null;
  action: string | null;
  resolution: string | null;
  aspect_ratio: string | null;
  veo_task_id: string | null;
  trace_id: string | null;
  video_id: string | null;
  output_path: string | null;
  stream_url: string | null;
  video_url: string | null;
  start_date: string | null;
  end_date: string | null;
  elapsed_seconds: number | null;
  waiting: boolean;
  error_code: string | null;
  error_message: string | null;
}

export interface VideoList {
  videos: Video[];
  total_entries: number;
}

/** The route params the host passes to a plugin component. */
export interface PluginProps {
  dagId?: string;
  runId?: string;
  taskId?: string;
  mapIndex?: string;
}

/** One page of the "Veo videos" page, as `GET /veo-ui/api/videos` answers it. */
export interface GalleryPage {
  videos: Video[];
  next_cursor: string | null;
  /** The readable DAGs with Veo videos (first page only). */
  dag_ids: string[] | null;
}

export interface GalleryFilters {
  dagId: string;
  state: string;
  model: string;
  /** yyyy-mm-dd, inclusive bounds of the start date (UTC). */
  from: string;
  to: string;
}
