"""Run folders: where runs live, how they are written atomically and read back (folder), the one config a run is
made from and saves as config.json (config), and the named selections of its images (selections).

Floor 0: imports nothing of skinsim. Everything above reads and writes runs through it, the dashboard included.
"""
