"""External environments: a process that owns its own simulator asks raylite for actions.

    client process                                    algorithm process
    PolicyClient("http://127.0.0.1:9900")             config: env=None, observation_space,
      start_episode()        ── POST JSON ──>          action_space, input_=lambda ioctx:
      get_action(eid, obs)   <── the action ──            PolicyServerInput(ioctx, "127.0.0.1", 9900)
      log_returns(eid, r)    ──>                       ExternalWorker: each episode's steps
      end_episode(eid, obs)  ──>                       (obs, action, reward) become the rows that
                                                       training_step samples (GAE or transitions)

Messages are JSON (never pickles: nothing received runs code). The server binds 127.0.0.1
unless given another address, and only answers the five commands below.
"""

from __future__ import annotations

import collections
import json
import threading
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

from raylite.rllib._buffer import concat_batches

COMMANDS = ("START_EPISODE", "GET_ACTION", "LOG_ACTION", "LOG_RETURNS", "END_EPISODE")


class IOContext:
    """What ``input_(ioctx)`` gets: the worker and the config."""

    def __init__(self, worker: Any, config: Any):
        self.worker = worker
        self.config = config
        self.worker_index = 0


class PolicyServerInput:
    """The HTTP server clients talk to (``ray.rllib.env.policy_server_input``).

    Args:
        ioctx: the IOContext ``input_`` is called with.
        address: the host to bind; "localhost" means 127.0.0.1.
        port: the port (0: any free one; see ``.port``).
    """

    def __init__(self, ioctx: IOContext, address: str = "127.0.0.1", port: int = 9900,
                 idle_timeout: float = 3.0):
        self.worker = ioctx.worker
        host = "127.0.0.1" if address in ("localhost", "", None) else address
        handler = type("Handler", (_Handler,), {"server_input": self})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.address, self.port = self.httpd.server_address[:2]
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True,
                                        name="rllib-policy-server")
        self._thread.start()

    def handle(self, request: dict) -> dict:
        command = request.get("command")
        if command not in COMMANDS:
            raise ValueError(f"unknown command {command!r} (commands: {', '.join(COMMANDS)})")
        return self.worker.handle(command, request)

    def shutdown(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    server_input: PolicyServerInput

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        try:
            length = int(self.headers.get("Content-Length", 0))
            if length > 16 * 1024 * 1024:
                raise ValueError("request too large")
            request = json.loads(self.rfile.read(length))
            body, status = json.dumps(self.server_input.handle(request)).encode(), 200
        except (ValueError, KeyError, TypeError) as exc:
            body, status = json.dumps({"error": str(exc)}).encode(), 400
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


class PolicyClient:
    """The client side (``ray.rllib.env.policy_client.PolicyClient``): inference happens on the
    server (``inference_mode="remote"``)."""

    def __init__(self, address: str, inference_mode: str = "remote",
                 update_interval: float | None = None):
        if inference_mode != "remote":
            raise ValueError(f"inference_mode={inference_mode!r}: raylite's PolicyClient asks "
                             f"the server for every action ('remote'); 'local' is not "
                             f"implemented")
        self.address = address.rstrip("/")

    def _send(self, **request: Any) -> dict:
        data = json.dumps(_to_json(request)).encode()
        http_request = urllib.request.Request(self.address, data=data, method="POST",
                                              headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(http_request, timeout=60) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise ValueError(f"policy server: {json.loads(exc.read()).get('error')}") from None

    def start_episode(self, episode_id: str | None = None, training_enabled: bool = True) -> str:
        return self._send(command="START_EPISODE", episode_id=episode_id,
                          training_enabled=training_enabled)["episode_id"]

    def get_action(self, episode_id: str, observation: Any) -> Any:
        action = self._send(command="GET_ACTION", episode_id=episode_id,
                            observation=observation)["action"]
        return np.asarray(action, np.float32) if isinstance(action, list) else action

    def log_action(self, episode_id: str, observation: Any, action: Any) -> None:
        self._send(command="LOG_ACTION", episode_id=episode_id, observation=observation,
                   action=action)

    def log_returns(self, episode_id: str, reward: float, info: dict | None = None) -> None:
        self._send(command="LOG_RETURNS", episode_id=episode_id, reward=float(reward),
                   info=info or {})

    def end_episode(self, episode_id: str, observation: Any) -> None:
        self._send(command="END_EPISODE", episode_id=episode_id, observation=observation)


def _to_json(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, dict):
        return {k: _to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_json(v) for v in value]
    return value


class ExternalWorker:
    """The algorithm's sampler for external envs: it answers the clients (acting with the
    latest weights) and turns their episodes into rows for ``sample()``."""

    def __init__(self, config: Any, model_spec: Any, observation_space: Any,
                 action_space: Any):
        from raylite.rllib._envs import preprocessor
        from raylite.rllib._rollout_worker import action_adapter
        self.config = config
        self.env = None
        self.policy = model_spec.acting_policy(action_adapter(action_space,
                                                              config.normalize_actions))
        self.on_policy = model_spec.on_policy
        self.flatten = preprocessor(observation_space)[1]
        self.rng = np.random.default_rng(config.seed)
        self.lock = threading.Condition()
        self.episodes: dict[str, dict] = {}
        self.ready: list[dict] = []            # finished steps: rows waiting for sample()
        self.ready_steps = 0
        self.finished: list[tuple[float, int]] = []
        self.server = config.input_(IOContext(self, config))

    # ---- the clients' commands (server threads) ---------------------------------------------
    def handle(self, command: str, request: dict) -> dict:
        with self.lock:
            if command == "START_EPISODE":
                episode_id = request.get("episode_id") or uuid.uuid4().hex
                self.episodes[episode_id] = {"steps": collections.defaultdict(list),
                                             "pending": None, "return": 0.0, "length": 0,
                                             "training": request.get("training_enabled", True)}
                return {"episode_id": episode_id}
            episode = self.episodes.get(request["episode_id"])
            if episode is None:
                raise ValueError(f"unknown episode {request['episode_id']!r}: call "
                                 f"start_episode first")
            if command == "LOG_RETURNS":
                episode["return"] += request["reward"]
                if episode["pending"] is not None:
                    episode["pending"]["rewards"] += request["reward"]
                return {}
            obs = self.flatten(np.asarray(request["observation"]))
            if command == "END_EPISODE":
                self._close(episode, obs, done=True)
                self.finished.append((episode["return"], episode["length"]))
                del self.episodes[request["episode_id"]]
                return {}
            self._close(episode, obs, done=False)
            out = self.policy.compute_actions(obs[None].astype(np.float32), True, self.rng)
            if command == "LOG_ACTION":
                out["actions"] = np.asarray([request["action"]])
            episode["pending"] = {"obs": obs, "rewards": 0.0,
                                  **{k: v[0] for k, v in out.items() if k != "env_actions"}}
            episode["length"] += 1
            return {"action": _to_json(out["env_actions"][0])} if command == "GET_ACTION" else {}

    def _close(self, episode: dict, obs: np.ndarray, done: bool) -> None:
        step, episode["pending"] = episode["pending"], None
        if step is None or not episode["training"]:
            return
        step.update(new_obs=obs, dones=done, terminateds=done)
        for name, value in step.items():
            episode["steps"][name].append(value)
        self.ready_steps += 1
        if done:
            self._cut(episode)
        self.lock.notify_all()

    def _cut(self, episode: dict) -> None:
        if episode["steps"].get("obs"):
            self.ready.append({name: np.stack([np.asarray(v) for v in values])[:, None]
                               for name, values in episode["steps"].items()})
        episode["steps"] = collections.defaultdict(list)

    # ---- the algorithm's side ----------------------------------------------------------------
    def set_state(self, state: tuple) -> None:
        weights, _, *exploration = state
        with self.lock:
            self.policy.set_weights(weights)
            if exploration and exploration[0] is not None:
                self.policy.set_exploration(exploration[0])

    def sample(self) -> dict[str, Any]:
        """Waits for ``rollout_fragment_length`` steps from the clients; their rows."""
        from raylite.rllib._multi_agent import gae_rows
        from raylite.rllib._replay_buffer import n_step_transitions
        with self.lock:
            self.lock.wait_for(lambda: self.ready_steps >= self.config.rollout_fragment_length)
            for episode in self.episodes.values():  # running episodes: what is closed so far
                self._cut(episode)
            pieces, self.ready, self.ready_steps = self.ready, [], 0
            episodes, self.finished = self.finished, []
            if self.on_policy:
                rows = [gae_rows(self.policy, steps, self.config) for steps in pieces]
            else:
                rows = [n_step_transitions(steps, self.config.n_step, self.config.gamma)
                        for steps in pieces]
        batch = concat_batches(rows)
        return {"batch": batch, "episodes": episodes, "filter_delta": None,
                "env_steps": len(next(iter(batch.values())))}

    def get_policy(self, policy_id: str = "default_policy") -> Any:
        return self.policy

    def apply(self, fn: Any, *args: Any) -> Any:
        return fn(self, *args)

    def close(self) -> None:
        self.server.shutdown()
