"""Chapter 2 of *Learning Ray*, "Getting Started With Ray Core": Examples 2-1 to 2-11.

The book's code as it stands, with ``import raylite as ray`` in place of ``import ray``.
Run it as a script::

    python examples/ch02_core_api.py

Each block below starts with a ``# Example 2-N.`` comment naming the book's example;
tests/test_book_ch2.py runs the blocks one by one and checks what the book says they print.
"""

# Example 2-1.
import raylite as ray
ray.init()

# Example 2-2.
import time

database = [
    "Learning", "Ray",
    "Flexible", "Distributed", "Python", "for", "Data", "Science"
]

def retrieve(item):
    time.sleep(item / 10.)
    return item, database[item]

# Example 2-3.
def print_runtime(input_data, start_time, decimals=1):
    print(f'Runtime: {time.time() - start_time:.{decimals}f} seconds, data:')
    print(*input_data, sep="\n")

start = time.time()
data = [retrieve(item) for item in range(8)]
print_runtime(data, start)

# Example 2-4.
@ray.remote
def retrieve_task(item):
    return retrieve(item)

# Example 2-5. Measuring performance of your Ray task.
start = time.time()
data_references = [retrieve_task.remote(item) for item in range(8)]
data = ray.get(data_references)
print_runtime(data, start, 2)

# Example 2-6.
database_object_ref = ray.put(database)

@ray.remote
def retrieve_task(item):
    obj_store_data = ray.get(database_object_ref)
    time.sleep(item / 10.)
    return item, obj_store_data[item]

# Example 2-7.
start = time.time()
data_references = [retrieve_task.remote(item) for item in range(8)]
all_data = []

while len(data_references) > 0:
    finished, data_references = ray.wait(data_references, num_returns=2, timeout=7.0)
    data = ray.get(finished)
    print_runtime(data, start, 3)
    all_data.extend(data)

# Example 2-8. Running a follow-up task that depends on another Ray task.
@ray.remote
def follow_up_task(retrieve_result):
    original_item, _ = retrieve_result
    follow_up_result = retrieve(original_item + 1)
    return retrieve_result, follow_up_result

retrieve_refs = [retrieve_task.remote(item) for item in [0, 2, 4, 6]]
follow_up_refs = [follow_up_task.remote(ref) for ref in retrieve_refs]

result = [print(data) for data in ray.get(follow_up_refs)]

# Example 2-9. (The extracted text splits this class across a footnote and loses the
# indentation of its body; restored here.)
@ray.remote
class DataTracker:
    def __init__(self):
        self._counts = 0

    def increment(self):
        self._counts += 1

    def counts(self):
        return self._counts

# Example 2-10.
@ray.remote
def retrieve_tracker_task(item, tracker):
    obj_store_data = ray.get(database_object_ref)
    time.sleep(item / 10.)
    tracker.increment.remote()
    return item, obj_store_data[item]

tracker = DataTracker.remote()

data_references = [retrieve_tracker_task.remote(item, tracker) for item in range(8)]
data = ray.get(data_references)
print(ray.get(tracker.counts.remote()))

# Example 2-11.
@ray.remote
def task_owned():
    return

@ray.remote
def task(dependency):
    res_owned = task_owned.remote()
    return

val = ray.put("value")
res = task.remote(dependency=val)
