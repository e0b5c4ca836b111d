import { act, cleanup, fireEvent, render, screen } from "@testing-library/react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import VeoVideos from "../src/main";
import type { Video } from "../src/types";

const LONG = "a lighthouse at dusk, waves crashing on the rocks, ".repeat(8).trim();

function video(over: Partial<Video>): Video {
  return {
    dag_id: "videos_dag",
    run_id: "manual__1",
    task_id: "clips",
    map_index: 0,
    state: "success",
    try_number: 1,
    prompt: "a red fox in snow",
    model: "veo3",
    action: "text2video",
    resolution: null,
    aspect_ratio: "9:16",
    veo_task_id: "job-0",
    trace_id: "trace-0",
    video_id: "vid-0",
    output_path: "/data/clip-0.mp4",
    stream_url: "/veo-ui/api/dags/videos_dag/dagRuns/manual__1/taskInstances/clips/0/video",
    video_url: null,
    start_date: null,
    end_date: null,
    elapsed_seconds: 72,
    waiting: false,
    error_code: null,
    error_message: null,
    ...over,
  };
}

function answer(videos: Video[], status = 200) {
  const body = status === 200 ? { videos, total_entries: videos.length } : { detail: "Forbidden" };
  return vi.fn(async () => new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } }));
}

async function renderTab(props: Record<string, string | undefined>) {
  await act(async () => {
    render(<VeoVideos {...props} />);
  });
}

describe("the Videos tab", () => {
  beforeEach(() => {
    vi.stubGlobal("fetch", answer([]));
  });
  afterEach(() => {
    cleanup();
    vi.unstubAllGlobals();
  });

  it("makes one request for a run of 100 mapped videos and shows a metadata-only player for each", async () => {
    const many = Array.from({ length: 100 }, (_, i) =>
      video({ map_index: i, prompt: `clip ${i}`, stream_url: `/veo-ui/api/x/${i}/video` }),
    );
    const fetch = answer(many);
    vi.stubGlobal("fetch", fetch);
    await renderTab({ dagId: "videos_dag", runId: "manual__1" });

    expect(fetch).toHaveBeenCalledTimes(1);
    const [url, init] = fetch.mock.calls[0] as unknown as [string, RequestInit];
    expect(new URL(url).pathname).toBe("/veo-ui/api/dags/videos_dag/dagRuns/manual__1/videos");
    expect(init.credentials).toBe("same-origin");
    const players = document.querySelectorAll("video");
    expect(players).toHaveLength(100);
    players.forEach((p, i) => {
      expect(p.getAttribute("preload")).toBe("metadata");
      expect(p.hasAttribute("controls")).toBe(true);
      expect(p.getAttribute("src")).toBe(`/veo-ui/api/x/${i}/video`);
    });
    expect(screen.getByText("clip 99")).toBeTruthy();
  });

  it("asks for one task instance on its page", async () => {
    const fetch = answer([video({ map_index: 3 })]);
    vi.stubGlobal("fetch", fetch);
    await renderTab({ dagId: "d", runId: "r/1", taskId: "clips", mapIndex: "3" });
    const url = new URL((fetch.mock.calls[0] as unknown as [string])[0]);
    expect(url.pathname).toBe("/veo-ui/api/dags/d/dagRuns/r%2F1/videos");
    expect(url.searchParams.get("task_id")).toBe("clips");
    expect(url.searchParams.get("map_index")).toBe("3");
  });

  it("shows a long prompt whole on demand, and what each clip was asked for", async () => {
    vi.stubGlobal("fetch", answer([video({ prompt: LONG })]));
    await renderTab({ dagId: "videos_dag", runId: "manual__1" });
    const prompt = screen.getByTestId("prompt");
    expect(prompt.textContent).not.toBe(LONG);
    fireEvent.click(screen.getByRole("button", { name: "Show the whole prompt" }));
    expect(screen.getByTestId("prompt").textContent).toBe(LONG);
    for (const text of ["veo3", "text2video", "9:16", "job-0", "trace-0", "/data/clip-0.mp4", "1m 12s"]) {
      expect(screen.getByText(text)).toBeTruthy();
    }
    const link = screen.getAllByRole("link", { name: "Task instance and log" })[0] as HTMLAnchorElement;
    expect(new URL(link.href).pathname).toBe("/dags/videos_dag/runs/manual__1/tasks/clips/mapped/0");
  });

  it("shows how long a waiting job has waited, a failure's code and reason, and the vendor URL as a fallback", async () => {
    vi.stubGlobal(
      "fetch",
      answer([
        video({ map_index: 0, state: "deferred", waiting: true, stream_url: null, output_path: null, elapsed_seconds: 95, veo_task_id: "job-w" }),
        video({ map_index: 1, state: "failed", stream_url: null, output_path: null, error_code: "content_policy", error_message: "refused" }),
        video({ map_index: 2, stream_url: null, output_path: null, video_url: "https://cdn.example/v.mp4" }),
      ]),
    );
    await renderTab({ dagId: "videos_dag", runId: "manual__1" });
    expect(screen.getByText("Waiting for 1m 35s on Veo job job-w")).toBeTruthy();
    expect(screen.getByTestId("failure").textContent).toBe("content_policy: refused");
    const players = document.querySelectorAll("video");
    expect(players).toHaveLength(1);
    expect(players[0].getAttribute("src")).toBe("https://cdn.example/v.mp4");
    expect(screen.getByText(/vendor's URL, which expires/)).toBeTruthy();
  });

  it("says why when the api-server refuses", async () => {
    vi.stubGlobal("fetch", answer([], 403));
    await renderTab({ dagId: "videos_dag", runId: "manual__1" });
    expect(screen.getByRole("alert").textContent).toContain("Forbidden");
    expect(document.querySelectorAll("video")).toHaveLength(0);
  });
});
