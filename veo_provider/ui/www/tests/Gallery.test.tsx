import { act, cleanup, fireEvent, render, screen } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";

import { galleryUrl } from "../src/api";
import VeoVideos from "../src/main";
import type { GalleryPage, Video } from "../src/types";

function video(i: number, over: Partial<Video> = {}): Video {
  return {
    dag_id: `dag_${i % 2}`,
    run_id: `run_${i}`,
    task_id: "generate",
    map_index: -1,
    state: "success",
    try_number: 1,
    prompt: `clip ${i}`,
    model: "veo3",
    action: "text2video",
    resolution: null,
    aspect_ratio: null,
    veo_task_id: `job-${i}`,
    trace_id: null,
    video_id: null,
    output_path: `/data/${i}.mp4`,
    stream_url: `/veo-ui/api/x/${i}/video`,
    video_url: null,
    start_date: null,
    end_date: null,
    elapsed_seconds: 10,
    waiting: false,
    error_code: null,
    error_message: null,
    ...over,
  };
}

/** Answers page after page: each call gets the next page. */
function pages(...answers: GalleryPage[]) {
  let n = 0;
  return vi.fn(async () => {
    const body = answers[Math.min(n++, answers.length - 1)];
    return new Response(JSON.stringify(body), { status: 200, headers: { "content-type": "application/json" } });
  });
}

function asked(fetch: ReturnType<typeof pages>, call: number): URL {
  return new URL((fetch.mock.calls[call] as unknown as [string])[0]);
}

describe("the Veo videos page", () => {
  afterEach(() => {
    cleanup();
    vi.unstubAllGlobals();
  });

  it("is what the nav entry (no route params) renders: one request per page, each card naming its run", async () => {
    const first = { videos: [video(1), video(2)], next_cursor: "c-2", dag_ids: ["dag_0", "dag_1"] };
    const second = { videos: [video(3)], next_cursor: null, dag_ids: null };
    const fetch = pages(first, second, first);
    vi.stubGlobal("fetch", fetch);
    await act(async () => {
      render(<VeoVideos />);
    });
    expect(fetch).toHaveBeenCalledTimes(1);
    expect(asked(fetch, 0).pathname).toBe("/veo-ui/api/videos");
    expect(asked(fetch, 0).searchParams.get("cursor")).toBeNull();
    expect(screen.getAllByTestId("run").map((e) => e.textContent)).toEqual(["dag_1 · run_1", "dag_0 · run_2"]);
    expect(screen.getAllByRole("option", { name: /dag_/ }).map((o) => o.textContent)).toEqual(["dag_0", "dag_1"]);

    await act(async () => {
      fireEvent.click(screen.getByText("Older"));
    });
    expect(asked(fetch, 1).searchParams.get("cursor")).toBe("c-2");
    expect(screen.getByText("clip 3")).toBeTruthy();
    expect((screen.getByText("Older") as HTMLButtonElement).disabled).toBe(true);

    await act(async () => {
      fireEvent.click(screen.getByText("Newer"));
    });
    expect(asked(fetch, 2).searchParams.get("cursor")).toBeNull();
    expect(fetch).toHaveBeenCalledTimes(3);
  });

  it("sends the filters and starts again from the newest page when one changes", async () => {
    const fetch = pages({ videos: [video(1)], next_cursor: "c-2", dag_ids: ["dag_1"] });
    vi.stubGlobal("fetch", fetch);
    await act(async () => {
      render(<VeoVideos />);
    });
    await act(async () => {
      fireEvent.click(screen.getByText("Older"));
    });
    await act(async () => {
      fireEvent.change(screen.getByLabelText("State"), { target: { value: "failed" } });
    });
    const url = asked(fetch, fetch.mock.calls.length - 1);
    expect(url.searchParams.get("state")).toBe("failed");
    expect(url.searchParams.get("cursor")).toBeNull();
  });

  it("asks for whole UTC days of start dates", () => {
    const url = new URL(galleryUrl({ dagId: "d", state: "", model: " veo3 ", from: "2026-01-30", to: "2026-01-31" }, "c", 10));
    expect(Object.fromEntries(url.searchParams)).toEqual({
      limit: "10",
      dag_id: "d",
      model: "veo3",
      start_date_gte: "2026-01-30T00:00:00Z",
      start_date_lt: "2026-02-01T00:00:00.000Z",
      cursor: "c",
    });
  });

  it("says why when the page cannot be loaded", async () => {
    vi.stubGlobal("fetch", vi.fn(async () => new Response(JSON.stringify({ detail: "Forbidden" }), { status: 403 })));
    await act(async () => {
      render(<VeoVideos />);
    });
    expect(screen.getByRole("alert").textContent).toContain("Forbidden");
  });
});
