"""The README's demo: *Learning Ray* chapter 2 as written, then chapter 3's distributed trainer.

    python examples/demo.py        # or: make demo

1. Runs examples/ch02_core_api.py as a script (Examples 2-1 to 2-11, about 10 seconds: the
   book's serial baseline alone sleeps 2.8 s).
2. Trains the chapter 3 maze policy with the book's ``train_policy_parallel`` (4 simulation
   actors, a short 50 episodes instead of the book's 1000) and evaluates it as the book does,
   without rendering (the book's ``render`` clears the terminal on every step).
"""

from __future__ import annotations

import importlib.util
import runpy
import time
from pathlib import Path

import raylite as ray

HERE = Path(__file__).resolve().parent
MOVES = {0: "down", 1: "left", 2: "up", 3: "right"}


def banner(title: str) -> None:
    print(f"\n{'=' * 20} {title} {'=' * 20}\n", flush=True)


def run_chapter_2() -> None:
    banner("Learning Ray, chapter 2: examples/ch02_core_api.py")
    runpy.run_path(str(HERE / "ch02_core_api.py"), run_name="__main__")
    ray.shutdown()


def load_maze():
    """The chapter 3 module, kept out of sys.modules so that its code travels by value."""
    spec = importlib.util.spec_from_file_location("learning_ray_ch3", HERE / "ch03_maze.py")
    maze = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(maze)
    return maze


def greedy_route(maze, policy, max_steps: int = 50) -> tuple[list[str], bool]:
    """The moves the trained policy makes from the start when it only exploits, and whether
    they reach the goal within max_steps."""
    env = maze.Environment()
    state, moves = env.reset(), []
    while not env.is_done() and len(moves) < max_steps:
        action = int(policy.get_action(state, explore=False))
        state, _, _, _ = env.step(action)
        moves.append(MOVES[action])
    return moves, env.is_done()


def run_chapter_3(num_episodes: int = 50, num_evaluation_episodes: int = 10) -> None:
    banner("Learning Ray, chapter 3: distributed Q-learning on the maze")
    maze = load_maze()
    ray.init()  # Example 3-13
    maze.environment = maze.Environment()
    maze.env_ref = ray.put(maze.environment)

    start = time.time()
    parallel_policy = maze.train_policy_parallel(num_episodes=num_episodes)
    print(f"train_policy_parallel: {num_episodes} episodes x 4 SimulationActors "
          f"in {time.time() - start:.2f} seconds")

    route, reaches_goal = greedy_route(maze, parallel_policy)
    print(f"Learned route ({len(route)} moves): {', '.join(route)}")
    if not reaches_goal:  # evaluating would loop forever
        print("The policy did not learn to reach the goal; try more episodes.")
    else:  # Example 3-12's evaluation, without rendering each step
        simulation = maze.Simulation(maze.environment)
        steps = sum(len(simulation.rollout(parallel_policy, explore=False))
                    for _ in range(num_evaluation_episodes))
        print(f"{steps / num_evaluation_episodes} steps on average "
              f"for a total of {num_evaluation_episodes} episodes.")
    ray.shutdown()


if __name__ == "__main__":
    started = time.time()
    run_chapter_2()
    run_chapter_3()
    print(f"\nDemo finished in {time.time() - started:.1f} seconds.")
