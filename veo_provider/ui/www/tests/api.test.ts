import { describe, expect, it } from "vitest";

import { formatSeconds, taskInstanceUrl, videosUrl } from "../src/api";

describe("the tab's URLs and times", () => {
  it("asks for a run, a task, or one task instance, escaping ids", () => {
    expect(new URL(videosUrl("d 1", "manual__2026-01-01T00:00:00+00:00")).pathname).toBe(
      "/veo-ui/api/dags/d%201/dagRuns/manual__2026-01-01T00%3A00%3A00%2B00%3A00/videos",
    );
    expect(new URL(videosUrl("d", "r", "t")).search).toBe("?task_id=t");
    expect(new URL(videosUrl("d", "r", "t", "-1")).search).toBe("?task_id=t&map_index=-1");
    expect(new URL(videosUrl("d", "r", "t", "not-a-number")).search).toBe("?task_id=t");
    expect(new URL(videosUrl("d", "r", undefined, "3")).search).toBe("");
  });

  it("links a mapped and an unmapped task instance to their pages", () => {
    const v = { dag_id: "d", run_id: "r", task_id: "t" };
    expect(new URL(taskInstanceUrl({ ...v, map_index: 4 } as never)).pathname).toBe("/dags/d/runs/r/tasks/t/mapped/4");
    expect(new URL(taskInstanceUrl({ ...v, map_index: -1 } as never)).pathname).toBe("/dags/d/runs/r/tasks/t");
  });

  it("says how long in the largest units that matter", () => {
    expect(formatSeconds(null)).toBeNull();
    expect(formatSeconds(9.6)).toBe("10s");
    expect(formatSeconds(95)).toBe("1m 35s");
    expect(formatSeconds(3 * 3600 + 125)).toBe("3h 2m");
  });
});
