"""Chapter 3 of *Learning Ray*, "Building Your First Distributed Application With Ray Core".

A 5x5 maze, a Q-learning policy trained serially and then in parallel with tasks and actors
(Examples 3-1 to 3-15), with ``import raylite as ray`` in place of ``import ray``. Run it::

    python examples/ch03_maze.py

The classes and functions are the book's, in the book's order. The book's top-level
statements (a random walk, training runs, evaluations, ``ray.init()``) run in the
``__main__`` block at the end, in the book's order, so that importing this module has no
side effects. ``create_policy`` and ``SimulationActor`` read the global ``env_ref`` exactly as
the book writes them, so a program that imports this module sets ``env_ref`` first::

    maze.env_ref = ray.put(maze.Environment())

The extracted book text shows the methods of ``Environment`` and ``Policy`` outside their
classes (the book presents them as continuations); they are indented into their classes here.
"""

# Example 3-1.
import random


class Discrete:
    def __init__(self, num_actions: int):
        """ Discrete action space for num_actions.
        Discrete(4) can be used as encoding moving in one of the cardinal directions.
        """
        self.n = num_actions

    def sample(self):
        return random.randint(0, self.n - 1)


# Example 3-2.
import os


class Environment:

    seeker, goal = (0, 0), (4, 4)
    info = {'seeker': seeker, 'goal': goal}

    def __init__(self, *args, **kwargs):
        self.action_space = Discrete(4)
        self.observation_space = Discrete(5*5)

    # Example 3-3.
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

    # Example 3-4.
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

    # Example 3-5.
    def render(self, *args, **kwargs):
        """Render the environment, e.g. by printing its representation."""
        os.system('cls' if os.name == 'nt' else 'clear')
        grid = [['| ' for _ in range(5)] + ["|\n"] for _ in range(5)]
        grid[self.goal[0]][self.goal[1]] = '|G'
        grid[self.seeker[0]][self.seeker[1]] = '|S'
        print(''.join([''.join(grid_row) for grid_row in grid]))


# Example 3-6 (its statements run in the __main__ block below).
import time


# Example 3-7. (The extracted text prints the class line as "**class Policy:**", a
# markdown artifact; it is plain "class Policy:" here.)
class Policy:

    def __init__(self, env):
        """A Policy suggest actions based on the current state.
        We do this by tracking the value of each state-action pair.
        """
        self.state_action_table = [
            [0 for _ in range(env.action_space.n)] for _ in range(env.observation_space.n)
        ]
        self.action_space = env.action_space

    def get_action(self, state, explore=True, epsilon=0.1):
        """Explore randomly or exploit the best value currently available."""
        if explore and random.uniform(0, 1) < epsilon:
            return self.action_space.sample()
        return np.argmax(self.state_action_table[state])


# Example 3-8.
class Simulation(object):
    def __init__(self, env):
        """Simulates rollouts of an environment, given a policy to follow."""
        self.env = env

    def rollout(self, policy, render=False, explore=True, epsilon=0.1):
        """Returns experiences for a policy rollout."""
        experiences = []
        state = self.env.reset()
        done = False
        while not done:
            action = policy.get_action(state, explore, epsilon)
            next_state, reward, done, info = self.env.step(action)
            experiences.append([state, action, reward, next_state])
            state = next_state
            if render:
                time.sleep(0.05)
                self.env.render()

        return experiences


# Example 3-9 (its statements run in the __main__ block below).

# Example 3-10.
import numpy as np


def update_policy(policy, experiences):
    """Updates a given policy with a list of (state, action, reward, state) experiences."""
    weight = 0.1
    discount_factor = 0.9
    for state, action, reward, next_state in experiences:
        next_max = np.max(policy.state_action_table[next_state])
        value = policy.state_action_table[state][action]
        new_value = (1 - weight) * value + weight * (reward + discount_factor * next_max)
        policy.state_action_table[state][action] = new_value


# Example 3-11.
def train_policy(env, num_episodes=10000):
    """Training a policy by updating it with rollout experiences."""
    policy = Policy(env)
    sim = Simulation(env)
    for _ in range(num_episodes):
        experiences = sim.rollout(policy)
        update_policy(policy, experiences)
    return policy


# Example 3-12.
def evaluate_policy(env, policy, num_episodes=10):
    """Evaluate a trained policy through rollouts."""
    simulation = Simulation(env)
    steps = 0

    for _ in range(num_episodes):
        experiences = simulation.rollout(policy, render=True, explore=False)
        steps += len(experiences)

    print(f"{steps / num_episodes} steps on average "
          f"for a total of {num_episodes} episodes.")


# Example 3-13 (its ray.init() and ray.put run in the __main__ block below).
import raylite as ray


@ray.remote
def create_policy():
    env = ray.get(env_ref)
    return Policy(env)


@ray.remote
class SimulationActor(Simulation):
    """Ray actor for a Simulation."""
    def __init__(self):
        env = ray.get(env_ref)
        super().__init__(env)


# Example 3-14.
@ray.remote
def update_policy_task(policy_ref, experiences_list):
    """Remote Ray task for updating a policy with experiences in parallel."""
    [update_policy(policy_ref, ray.get(xp)) for xp in experiences_list]
    return policy_ref


def train_policy_parallel(num_episodes=1000, num_simulations=4):
    """Parallel policy training function."""
    policy = create_policy.remote()
    simulations = [SimulationActor.remote() for _ in range(num_simulations)]

    for _ in range(num_episodes):
        experiences = [sim.rollout.remote(policy) for sim in simulations]
        policy = update_policy_task.remote(policy, experiences)

    return ray.get(policy)


if __name__ == "__main__":
    # Example 3-1.
    space = Discrete(4)
    print(space.sample())

    # Example 3-6: a seeker taking random actions until it finds the goal.
    environment = Environment()

    while not environment.is_done():
        random_action = environment.action_space.sample()
        environment.step(random_action)
        time.sleep(0.1)
        environment.render()

    # Example 3-9.
    untrained_policy = Policy(environment)
    sim = Simulation(environment)

    exp = sim.rollout(untrained_policy, render=True, epsilon=1.0)
    for row in untrained_policy.state_action_table:
        print(row)

    # Example 3-11.
    trained_policy = train_policy(environment)

    # Example 3-12: "8.0 steps on average for a total of 10 episodes."
    evaluate_policy(environment, trained_policy)

    # Example 3-13.
    ray.init()
    environment = Environment()
    env_ref = ray.put(environment)

    # Example 3-15.
    parallel_policy = train_policy_parallel()
    evaluate_policy(environment, parallel_policy)
