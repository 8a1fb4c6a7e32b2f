"""The maze of *Learning Ray*, chapter 3 (Examples 3-1 to 3-5), as an RLlib example env.

A seeker starts at (0, 0) on a 5x5 grid and is rewarded 1 for reaching the goal at (4, 4).
The classes are the book's (``examples/ch03_maze.py`` has the whole chapter), written to the
old gym API the book uses: ``reset()`` returns the observation and ``step()`` four values;
rllib wraps them. ``make_maze`` adds a step limit, since the book's episodes end only at the
goal. Train on it with::

    rllib train --run PPO --env maze --stop '{"episode_reward_mean": 0.95}' \\
        --config '{"num_workers": 1, "train_batch_size": 1000, "lr": 0.001}'
"""

from __future__ import annotations

import os
import random
from typing import Any


class Discrete:
    def __init__(self, num_actions: int):
        """ Discrete action space for num_actions.
        Discrete(4) can be used as encoding moving in one of the cardinal directions.
        """
        self.n = num_actions

    def sample(self):
        return random.randint(0, self.n - 1)


class Environment:

    seeker, goal = (0, 0), (4, 4)
    info = {'seeker': seeker, 'goal': goal}

    def __init__(self, *args, **kwargs):
        self.action_space = Discrete(4)
        self.observation_space = Discrete(5*5)

    def reset(self):
        """Reset seeker and goal positions, return observations."""
        self.seeker = (0, 0)
        self.goal = (4, 4)

        return self.get_observation()

    def get_observation(self):
        """Encode the seeker position as integer"""
        return 5 * self.seeker[0] + self.seeker[1]

    def get_reward(self):
        """Reward finding the goal"""
        return 1 if self.seeker == self.goal else 0

    def is_done(self):
        """We're done if we found the goal"""
        return self.seeker == self.goal

    def step(self, action):
        """Take a step in a direction and return all available information."""
        if action == 0: # move down
            self.seeker = (min(self.seeker[0] + 1, 4), self.seeker[1])
        elif action == 1: # move left
            self.seeker = (self.seeker[0], max(self.seeker[1] - 1, 0))
        elif action == 2: # move up
            self.seeker = (max(self.seeker[0] - 1, 0), self.seeker[1])
        elif action == 3: # move right
            self.seeker = (self.seeker[0], min(self.seeker[1] + 1, 4))
        else:
            raise ValueError("Invalid action")

        return self.get_observation(), self.get_reward(), self.is_done(), self.info

    def render(self, *args, **kwargs):
        """Render the environment, e.g. by printing its representation."""
        os.system('cls' if os.name == 'nt' else 'clear')
        grid = [['| ' for _ in range(5)] + ["|\n"] for _ in range(5)]
        grid[self.goal[0]][self.goal[1]] = '|G'
        grid[self.seeker[0]][self.seeker[1]] = '|S'
        print(''.join([''.join(grid_row) for grid_row in grid]))


class StepLimitedMaze(Environment):
    """The book's maze, ending (truncated, in the old gym way) after ``max_steps`` steps."""

    def __init__(self, max_steps: int = 100):
        super().__init__()
        self.max_steps = max_steps
        self.steps = 0

    def reset(self):
        self.steps = 0
        return super().reset()

    def step(self, action):
        obs, reward, done, info = super().step(action)
        self.steps += 1
        if not done and self.steps >= self.max_steps:
            return obs, reward, True, {**info, "TimeLimit.truncated": True}
        return obs, reward, done, info


def make_maze(env_config: dict[str, Any] | None = None) -> StepLimitedMaze:
    """The maze with ``env_config["max_steps"]`` (default 100) steps per episode."""
    return StepLimitedMaze(int((env_config or {}).get("max_steps", 100)))
